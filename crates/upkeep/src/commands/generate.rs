//! `upkeep generate`.

use clap::Args;
use upkeep_generate::{GenerateOptions, GenerateReport};

use crate::cli::{ConnectionArgs, Context, Failure, OutputArgs};
use crate::{exit, printer};

/// Create and fill a realistic shop schema (customers, orders, order_lines, documents) with
/// deterministic data, for tests and benchmarks.
///
/// `order_lines` gets --rows rows; orders a quarter of that, customers a fiftieth, documents
/// (text, blobs, JSON) a hundredth. The same --rows and --seed give the same rows in every
/// engine.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  upkeep generate postgres://postgres@localhost/bench --rows 5000000
  upkeep generate shop.db --rows 10000 --seed 7 --replace")]
pub struct GenerateArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Rows of order_lines.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rows: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Loading connections (SQLite loads with one).
    #[arg(long, short = 'j', default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Drop the four tables first when they exist.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(args: GenerateArgs, ctx: &Context) -> Result<u8, Failure> {
    let target = args.connection.target()?;
    let mut options = GenerateOptions::new(target, args.rows);
    options.seed = args.seed;
    options.jobs = usize::from(args.jobs);
    options.replace = args.replace;
    let report = tokio::select! {
        r = upkeep_generate::run(options) => r?,
        () = ctx.cancel.cancelled() => return Err(Failure::from((exit::INTERRUPTED, anyhow::anyhow!("interrupted")))),
    };
    printer::report(&report, args.output.format(), text, markdown)?;
    Ok(exit::OK)
}

fn rows(report: &GenerateReport) -> Vec<Vec<String>> {
    let mut rows = vec![vec!["TABLE".into(), "ROWS".into(), "SECONDS".into()]];
    for t in &report.tables {
        rows.push(vec![
            t.table.clone(),
            printer::thousands(t.rows),
            format!(
                "{:.2}",
                std::time::Duration::from_millis(t.duration_ms).as_secs_f64()
            ),
        ]);
    }
    rows
}

fn summary(report: &GenerateReport) -> String {
    format!(
        "{} rows in {:.2} s into {} (seed {})\n",
        printer::thousands(report.total_rows),
        std::time::Duration::from_millis(report.duration_ms).as_secs_f64(),
        report.target,
        report.seed
    )
}

fn text(report: &GenerateReport) -> String {
    printer::columns(&rows(report), &[1, 2]) + &summary(report)
}

fn markdown(report: &GenerateReport) -> String {
    format!(
        "## Generated data in `{}`\n\n{}\n{}",
        report.target,
        printer::markdown_table(&rows(report)),
        summary(report)
    )
}
