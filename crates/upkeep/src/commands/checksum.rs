//! `upkeep checksum`.

use clap::Args;
use upkeep_checksum::{ChecksumOptions, ChecksumReport};

use crate::cli::{ConnectionArgs, Context, Failure, OutputArgs};
use crate::{exit, printer, progress};

/// Row counts and content digests of tables, from one consistent snapshot.
///
/// Each table is split into key ranges read in parallel; the digest (docs/content-digest.md)
/// is the same for the same rows in PostgreSQL, MySQL/MariaDB and SQLite, so two checksums
/// compare databases across servers and engines.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  upkeep checksum postgres://app@db1/shop
  upkeep checksum mysql://root@db2/shop --tables 'order*' --exclude orders_archive --json
  upkeep checksum shop.db --chunks
  UPKEEP_PASSWORD=… upkeep checksum postgres://app@db1/shop --jobs 4")]
pub struct ChecksumArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Only tables matching these glob patterns (`*`, `?`; `schema.table` or `table`).
    #[arg(long = "tables", value_name = "PATTERN", num_args = 1..)]
    pub tables: Vec<String>,
    /// Skip tables matching these glob patterns.
    #[arg(long, value_name = "PATTERN", num_args = 1..)]
    pub exclude: Vec<String>,
    /// Parallel readers (connections), all in one snapshot. SQLite reads with one.
    #[arg(long, short = 'j', default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Also print each key-range chunk's digest.
    #[arg(long)]
    pub chunks: bool,
    /// Target rows per chunk.
    #[arg(long, default_value_t = 250_000, value_name = "ROWS", value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_rows: u64,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(args: ChecksumArgs, ctx: &Context) -> Result<u8, Failure> {
    let target = args.connection.target()?;
    let mut options = ChecksumOptions::new(target);
    options.include = args.tables;
    options.exclude = args.exclude;
    options.jobs = usize::from(args.jobs);
    options.chunks = args.chunks;
    options.plan.chunk_rows = args.chunk_rows;
    let report = upkeep_checksum::run(
        options,
        progress::reporter(ctx.show_progress),
        ctx.cancel.clone(),
    )
    .await?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    printer::report(&report, args.output.format(), text, markdown)?;
    Ok(exit::OK)
}

fn rows(report: &ChecksumReport) -> Vec<Vec<String>> {
    let mut rows = vec![vec!["TABLE".into(), "ROWS".into(), "DIGEST".into()]];
    for t in &report.tables {
        rows.push(vec![
            t.table.clone(),
            printer::thousands(t.rows),
            t.digest.to_string(),
        ]);
        for c in t.chunks.iter().flatten() {
            rows.push(vec![
                format!("  {}", c.range),
                printer::thousands(c.rows),
                c.digest.to_string(),
            ]);
        }
    }
    rows
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn summary(report: &ChecksumReport) -> String {
    format!(
        "{} tables, {} rows in {:.2} s ({} rows/s, {} jobs) from {} ({})\n",
        report.tables.len(),
        printer::thousands(report.total_rows),
        std::time::Duration::from_millis(report.duration_ms).as_secs_f64(),
        printer::thousands(report.rows_per_sec as u64),
        report.jobs,
        report.target,
        report.consistency,
    )
}

fn text(report: &ChecksumReport) -> String {
    printer::columns(&rows(report), &[1]) + &summary(report)
}

fn markdown(report: &ChecksumReport) -> String {
    format!(
        "## Checksum of `{}`\n\n{}\n{}",
        report.target,
        printer::markdown_table(&rows(report)),
        summary(report)
    )
}
