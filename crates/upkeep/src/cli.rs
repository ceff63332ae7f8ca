//! The top-level parser, the arguments every command shares, and the run loop.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::commands;
use crate::exit;

#[derive(Debug, Parser)]
#[command(
    name = "upkeep",
    version,
    about = "Verified backup, migration, checks and load tests for PostgreSQL, MySQL/MariaDB and SQLite",
    long_about = "upkeep does the technical work of a database maintenance contract and proves it: \
                  every tool that reads or moves data ends with content digests \
                  (docs/content-digest.md in the source repository) that are equal across engines.",
    after_help = exit::HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Only errors on stderr, and no report on stdout unless --json asks for one.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Never draw progress bars (they are drawn only when stderr is a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Checksum(commands::checksum::ChecksumArgs),
    Backup(commands::backup::BackupArgs),
    Restore(commands::backup::RestoreArgs),
    Verify(commands::backup::VerifyArgs),
    Snapshots(commands::backup::SnapshotsArgs),
    Forget(commands::backup::ForgetArgs),
    Generate(commands::generate::GenerateArgs),
    Completions(commands::docs::CompletionsArgs),
    Manpage(commands::docs::ManpageArgs),
}

/// How a database is reached: its URL, and where the password comes from when the URL has
/// none.
#[derive(Debug, Args, Clone)]
pub struct ConnectionArgs {
    /// postgres://, mysql://, mariadb://, sqlite://PATH or a path ending in .db/.sqlite/.sqlite3.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Read the password from the first line of this file (for cron: no password in the
    /// crontab or the process list).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

impl ConnectionArgs {
    pub fn target(&self) -> Result<upkeep_db::Target, upkeep_db::DbError> {
        target(&self.url, self.password_file.as_deref())
    }
}

/// The target of `url`. A password in the URL wins; else the first line of `password_file`;
/// else `UPKEEP_PASSWORD`.
pub fn target(
    url: &str,
    password_file: Option<&std::path::Path>,
) -> Result<upkeep_db::Target, upkeep_db::DbError> {
    let password = match password_file {
        Some(path) => {
            crate::secrets::warn_if_readable_by_others(path, "password file");
            Some(upkeep_db::read_password_file(path)?)
        }
        None => std::env::var("UPKEEP_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()),
    };
    upkeep_db::Target::parse(url, password.as_deref())
}

/// Output format of a command's report on stdout.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Print the report as JSON (same as --format json).
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

impl OutputArgs {
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }
}

/// A command's failure: the message to print and the exit code.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

/// An error whose category decides the exit code.
macro_rules! failure_by_kind {
    ($($error:ty),*) => {$(
        impl From<$error> for Failure {
            fn from(e: $error) -> Self {
                Self::from((crate::exit::for_kind(e.kind()), e))
            }
        }
    )*};
}

failure_by_kind!(
    upkeep_db::DbError,
    upkeep_checksum::ChecksumError,
    upkeep_generate::GenerateError
);

impl From<upkeep_backup::BackupError> for Failure {
    /// Data that did not check out exits 3; other failures by their category.
    fn from(e: upkeep_backup::BackupError) -> Self {
        let code = if e.is_mismatch() {
            crate::exit::MISMATCH
        } else {
            crate::exit::for_kind(e.kind())
        };
        Self::from((code, e))
    }
}

impl From<std::io::Error> for Failure {
    /// Writing the report or a file failed.
    fn from(e: std::io::Error) -> Self {
        Self::from((crate::exit::FAILURE, e))
    }
}

impl<E: Into<anyhow::Error>> From<(u8, E)> for Failure {
    fn from((code, error): (u8, E)) -> Self {
        Self {
            code,
            error: error.into(),
        }
    }
}

pub struct Context {
    pub cancel: CancellationToken,
    pub show_progress: bool,
}

pub fn main() -> ExitCode {
    // Parse a copy of the arguments, then overwrite the passwords in the originals.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(args);
    init_logging(&cli.global);
    crate::printer::set_quiet(cli.global.quiet);
    crate::secrets::hide_passwords_in_argv();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::printer::error(&anyhow::anyhow!("cannot start the runtime: {e}"));
            return ExitCode::from(exit::FAILURE);
        }
    };
    let cancel = CancellationToken::new();
    let ctx = Context {
        cancel: cancel.clone(),
        show_progress: !cli.global.no_progress
            && !cli.global.quiet
            && std::io::stderr().is_terminal(),
    };
    let result = runtime.block_on(async move {
        let signal = cancel.clone();
        tokio::spawn(async move {
            if interrupted().await {
                tracing::warn!("interrupted: stopping");
                signal.cancel();
            }
        });
        match cli.command {
            Command::Checksum(args) => commands::checksum::run(args, &ctx).await,
            Command::Generate(args) => commands::generate::run(args, &ctx).await,
            Command::Backup(args) => commands::backup::backup(args, &ctx).await,
            Command::Restore(args) => commands::backup::restore(args, &ctx).await,
            Command::Verify(args) => commands::backup::verify(args, &ctx).await,
            Command::Snapshots(args) => commands::backup::snapshots(args),
            Command::Forget(args) => commands::backup::forget(args),
            Command::Completions(args) => commands::docs::completions(&args),
            Command::Manpage(args) => commands::docs::manpage(&args),
        }
    });
    // Do not wait for readers blocked on a dead server.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            crate::printer::error(&f.error);
            ExitCode::from(f.code)
        }
    }
}

/// Waits for Ctrl-C, or SIGTERM (what systemd and `kill` send): either stops the work
/// cleanly with exit code 130. False when no signal can be watched.
async fn interrupted() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            r = term.recv() => r.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

fn init_logging(global: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let level = if global.quiet {
        "error"
    } else {
        match global.verbose {
            0 => "warn",
            1 => "debug",
            _ => "trace",
        }
    };
    // Server notices reach us through sqlx's log; at the default level they
    // would add lines such as "terminating connection due to immediate shutdown"
    // before the one-line error that already names what happened.
    let sqlx = if global.verbose == 0 { "error" } else { "warn" };
    let filter = EnvFilter::try_from_env("UPKEEP_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx={sqlx}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    match global.log_format {
        LogFormat::Text => builder.without_time().init(),
        LogFormat::Json => builder.json().init(),
    }
}
