//! `upkeep backup`, `restore`, `verify`, `snapshots` and `forget`.

use std::path::PathBuf;

use clap::Args;
use upkeep_backup::{
    BackupReport, ForgetReport, RestoreReport, SchemaMode, SnapshotSummary, VerifyReport,
};

use crate::cli::{Context, Failure, OutputArgs};
use crate::{config, exit, printer, progress};

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::from((exit::USAGE, e))
}

/// Where the repository is and which configuration names it.
#[derive(Debug, Args, Clone)]
pub struct RepoArgs {
    /// The repository: a folder (created by the first backup) or a name from upkeep.toml.
    #[arg(long, value_name = "DIR|NAME")]
    pub repo: PathBuf,
    /// Configuration file (default: $UPKEEP_CONFIG, ./upkeep.toml, /etc/upkeep/upkeep.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl RepoArgs {
    /// The configuration, and the repository's folder (a name from it, or the path given).
    fn resolve(&self) -> Result<(config::Config, PathBuf), Failure> {
        let cfg = config::load(self.config.as_deref()).map_err(usage)?;
        let repo = cfg.repository(&self.repo);
        Ok((cfg, repo))
    }
}

/// A database given as a URL or as a name from upkeep.toml (whose password file the command
/// line's overrides).
fn target(
    cfg: &config::Config,
    arg: &str,
    password_file: Option<PathBuf>,
) -> Result<upkeep_db::Target, Failure> {
    let (url, file) = cfg.database(arg);
    Ok(crate::cli::target(&url, password_file.or(file).as_deref())?)
}

/// Take a verified, deduplicated snapshot of a database.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  upkeep backup postgres://backup@db1/shop --repo /var/backups/shop
  upkeep backup shop --repo nightly --tag nightly --metrics-file /var/lib/node_exporter/upkeep.prom
  upkeep backup app.db --repo /srv/backups/app --tables 'order*' --json
  upkeep backup postgres://backup@db1/shop --repo /var/backups/shop --force

What is unchanged since the last snapshot of the same database is not read again: on
PostgreSQL each key range whose row count and row versions (ctid, xmin) are the same, on
MariaDB each InnoDB table whose id and change stamp are the same (needs the PROCESS
privilege). Its chunks and digests are taken from that snapshot. --force reads everything.")]
pub struct BackupArgs {
    /// URL, SQLite path, or a database name from upkeep.toml.
    #[arg(value_name = "URL|NAME")]
    pub database: String,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    #[arg(long = "tables", value_name = "PATTERN", num_args = 1..)]
    pub tables: Vec<String>,
    #[arg(long, value_name = "PATTERN", num_args = 1..)]
    pub exclude: Vec<String>,
    #[arg(long, short = 'j', default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Label the snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// zstd level of a new repository (1 compresses columnar chunks as well as 3 and twice
    /// as fast; higher levels trade speed for a few percent).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,
    /// Read every key range again, even those unchanged since the last snapshot.
    #[arg(long)]
    pub force: bool,
    /// Read everything when the rows taken from earlier snapshots were read longer ago than
    /// this (default 7d, or [backup] full_every in upkeep.toml); 0 reads everything always.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub full_every: Option<std::time::Duration>,
    /// Also write the summary in Prometheus text format (node_exporter's textfile collector),
    /// on success and on failure.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn backup(args: BackupArgs, ctx: &Context) -> Result<u8, Failure> {
    let started = std::time::Instant::now();
    // The metrics file says "failed" for any failure, a bad configuration or URL included.
    let mut source = String::new();
    let mut repo = args.repo.repo.clone();
    let result = async {
        let (cfg, repo_path) = args.repo.resolve()?;
        repo.clone_from(&repo_path);
        let target = target(&cfg, &args.database, args.password_file.clone())?;
        source = target.display().to_owned();
        let mut options = upkeep_backup::BackupOptions::new(target, repo_path);
        options.include = args.tables;
        options.exclude = args.exclude;
        options.jobs = usize::from(args.jobs);
        options.tags = args.tags;
        options.zstd_level = args.zstd_level;
        options.force = args.force;
        options.full_every = match (args.full_every, &cfg.backup.full_every) {
            (Some(d), _) => d,
            (None, Some(text)) => parse_duration(text)
                .map_err(|e| usage(anyhow::anyhow!("[backup] full_every in upkeep.toml: {e}")))?,
            (None, None) => upkeep_backup::DEFAULT_FULL_EVERY,
        };
        Ok::<_, Failure>(
            upkeep_backup::backup(
                options,
                progress::reporter(ctx.show_progress),
                ctx.cancel.clone(),
            )
            .await?,
        )
    }
    .await;
    if let Some(path) = &args.metrics_file {
        let text = metrics(
            result.as_ref().ok(),
            &source,
            &repo,
            started.elapsed().as_secs_f64(),
            previous_success(path),
        );
        write_atomically(path, &text).map_err(|e| Failure::from((exit::FAILURE, e)))?;
    }
    let report = result?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    printer::report_fenced(&report, args.output.format(), backup_text)?;
    Ok(exit::OK)
}

/// `7d`, `36h`, `90m`, `0`: humantime's durations.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    if text.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration such as 7d, 36h or 90m: {e}"))
}

fn backup_text(r: &BackupReport) -> String {
    let mut rows = vec![vec![
        "TABLE".into(),
        "ROWS".into(),
        "CHUNKS".into(),
        "DIGEST".into(),
    ]];
    for t in &r.tables {
        rows.push(vec![
            t.table.clone(),
            printer::thousands(t.rows),
            t.chunks.to_string(),
            t.digest.to_string(),
        ]);
    }
    let unchanged = match &r.parent {
        Some(parent) if r.ranges_unchanged > 0 => format!(
            "{} of {} key ranges ({} rows) unchanged since snapshot {parent}, not read again\n",
            r.ranges_unchanged,
            r.ranges_total,
            printer::thousands(r.rows_unchanged)
        ),
        _ => String::new(),
    };
    let full = match &r.full_read_reason {
        Some(reason) => format!("every range read: {reason}\n"),
        None => format!("last full read: {}\n", r.last_full_read_at),
    };
    printer::columns(&rows, &[1, 2])
        + &unchanged
        + &full
        + &format!(
            "snapshot {} of {} in {}: {} rows, {} read, {} new chunks of {} stored ({} bytes), {:.2} s\n",
            r.snapshot,
            r.source,
            r.repository,
            printer::thousands(r.total_rows),
            bytes(r.bytes_read),
            r.chunks_new,
            r.chunks_total,
            printer::thousands(r.bytes_stored),
            r.duration_ms as f64 / 1000.0
        )
}

fn bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} MB", f / 1e6)
    } else {
        format!("{n} B")
    }
}

/// The last success's time from the metrics file a previous run wrote: a failed run keeps
/// it, so that an alert on its age keeps counting from the last good backup.
fn previous_success(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with("upkeep_backup_last_success_timestamp_seconds{"))
        .and_then(|l| l.rsplit(' ').next())
        .filter(|v| v.parse::<u64>().is_ok())
        .map(str::to_owned)
}

fn metrics(
    report: Option<&BackupReport>,
    source: &str,
    repo: &std::path::Path,
    seconds: f64,
    previous_success: Option<String>,
) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let labels = format!(
        "source=\"{}\",repository=\"{}\"",
        esc(source),
        esc(&repo.display().to_string())
    );
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, value: String| {
        out.push_str(&format!("# HELP upkeep_backup_{name} {help}\n# TYPE upkeep_backup_{name} gauge\nupkeep_backup_{name}{{{labels}}} {value}\n"));
    };
    metric(
        "success",
        "1 if the last backup succeeded, else 0",
        u8::from(report.is_some()).to_string(),
    );
    metric(
        "duration_seconds",
        "Wall time of the last backup",
        format!("{seconds:.3}"),
    );
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string()
    };
    if let Some(last) = report.map(|_| now()).or(previous_success) {
        metric(
            "last_success_timestamp_seconds",
            "When the last successful backup ended",
            last,
        );
    }
    if let Some(r) = report {
        metric(
            "rows",
            "Rows in the last snapshot",
            r.total_rows.to_string(),
        );
        metric(
            "bytes_read",
            "Canonical bytes read by the last backup",
            r.bytes_read.to_string(),
        );
        metric(
            "bytes_stored",
            "Compressed bytes the last backup added to the repository",
            r.bytes_stored.to_string(),
        );
        metric(
            "chunks_new",
            "Chunks the last backup added",
            r.chunks_new.to_string(),
        );
        metric(
            "rows_unchanged",
            "Rows in key ranges the last backup found unchanged and did not read",
            r.rows_unchanged.to_string(),
        );
        metric(
            "dedup_ratio",
            "Bytes read per byte stored",
            format!("{:.3}", r.dedup_ratio),
        );
    }
    out
}

/// Writes the metrics file through a temporary one, readable by all (0644) whatever the
/// umask: node_exporter's textfile collector runs as another user.
fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| {
            #[cfg(unix)]
            std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("cannot write metrics file {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("cannot write metrics file {}: {e}", path.display()))
}

/// Restore a snapshot into a database, then prove it: every restored table's digest must equal
/// the snapshot's.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  upkeep restore --repo /var/backups/shop latest --to postgres://app@db2/shop_copy
  upkeep restore --repo nightly 20261125T0300 --to shop.db --tables customers orders
  upkeep restore --repo nightly latest --to mysql://root@db3/shop --clean --jobs 4")]
pub struct RestoreArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// A snapshot id, a unique prefix of one, or `latest`.
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// The database to restore into (URL, SQLite path or name from upkeep.toml).
    #[arg(long = "to", value_name = "URL|NAME")]
    pub to: String,
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    #[arg(long = "tables", value_name = "PATTERN", num_args = 1..)]
    pub tables: Vec<String>,
    #[arg(long, value_name = "PATTERN", num_args = 1..)]
    pub exclude: Vec<String>,
    #[arg(long, short = 'j', default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    #[arg(long, conflicts_with = "data_only")]
    pub schema_only: bool,
    #[arg(long)]
    pub data_only: bool,
    /// Drop (or with --data-only, empty) the snapshot's tables in the target first.
    #[arg(long)]
    pub clean: bool,
    /// PostgreSQL: each job's memory for index builds and foreign key checks
    /// (maintenance_work_mem); a server set higher keeps its own. Lower it on a small server.
    #[arg(long, value_name = "MB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub maintenance_work_mem: u64,
    /// Leave owners out (PostgreSQL owners, MySQL definers): the restoring user owns
    /// everything, as pg_restore's --no-owner.
    #[arg(long)]
    pub no_owner: bool,
    /// Leave privileges (GRANTs) out, as pg_restore's --no-privileges.
    #[arg(long)]
    pub no_privileges: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn restore(args: RestoreArgs, ctx: &Context) -> Result<u8, Failure> {
    let (cfg, repo) = args.repo.resolve()?;
    let target = target(&cfg, &args.to, args.password_file.clone())?;
    let mut options = upkeep_backup::RestoreOptions::new(repo, target);
    options.snapshot = args.snapshot;
    options.include = args.tables;
    options.exclude = args.exclude;
    options.jobs = usize::from(args.jobs);
    options.clean = args.clean;
    options.maintenance_work_mem_mb = args.maintenance_work_mem;
    options.attributes = upkeep_core::Attributes {
        owners: !args.no_owner,
        privileges: !args.no_privileges,
    };
    options.mode = if args.schema_only {
        SchemaMode::SchemaOnly
    } else if args.data_only {
        SchemaMode::DataOnly
    } else {
        SchemaMode::SchemaAndData
    };
    let report = upkeep_backup::restore(options, ctx.cancel.clone()).await?;
    for l in &report.lossy_conversions {
        tracing::warn!("lossy conversion: {l}");
    }
    printer::report_fenced(&report, args.output.format(), restore_text)?;
    // A same-engine restore whose schema is not the snapshot's is no copy: exit 3, the
    // report naming what differs. Another engine's named losses are expected.
    Ok(if report.schema_problems().is_empty() {
        exit::OK
    } else {
        exit::MISMATCH
    })
}

fn restore_text(r: &RestoreReport) -> String {
    let mut rows = vec![vec![
        "TABLE".into(),
        "ROWS".into(),
        "DIGEST".into(),
        "CHECK".into(),
    ]];
    for t in &r.tables {
        let check = match t.restored {
            Some(d) if d == t.expected => "equal",
            Some(_) => "DIFFERENT",
            None => "-",
        };
        rows.push(vec![
            t.table.clone(),
            printer::thousands(t.rows),
            t.expected.to_string(),
            check.into(),
        ]);
    }
    let mut out = printer::columns(&rows, &[1]);
    // The schema: every object not carried over as it was, by name; the equal ones counted.
    let mut equal = 0;
    let mut translated = 0;
    for c in &r.schema {
        use upkeep_core::ObjectStatus as S;
        let line = match &c.status {
            S::Equal => {
                equal += 1;
                continue;
            }
            S::Translated { .. } => {
                translated += 1;
                continue;
            }
            S::Weakened { detail } => format!("weakened: {} ({detail})", c.key),
            S::NotCarried { reason } => format!("not carried over: {} ({reason})", c.key),
            S::Missing => format!("MISSING: {}", c.key),
            S::Different {
                attribute,
                expected,
                found,
            } => format!(
                "DIFFERENT: {} ({attribute}: expected {expected:?}, found {found:?})",
                c.key
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    let data = if r.data_verified {
        "every table's digest equals the snapshot's"
    } else {
        "data not verified (--schema-only)"
    };
    let schema = if r.schema.is_empty() {
        String::new()
    } else {
        let named = r.schema.len() - equal - translated;
        let mut s = format!("; schema: {equal} objects equal");
        if translated > 0 {
            s.push_str(&format!(", {translated} translated"));
        }
        if named > 0 {
            s.push_str(&format!(", {named} listed above"));
        }
        s
    };
    out + &format!(
        "restored snapshot {} into {}: {} rows in {:.2} s, {data}{schema}{}\n",
        r.snapshot,
        r.target,
        printer::thousands(r.total_rows),
        r.duration_ms as f64 / 1000.0,
        if r.verified { "; verified" } else { "" }
    )
}

/// Check a repository: every referenced chunk present and, with --read-data, every chunk
/// decompressed, rehashed and every table digest recomputed from the stored rows.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  upkeep verify --repo /var/backups/shop
  upkeep verify --repo nightly --all --read-data
  upkeep verify --repo nightly latest --against postgres://app@db1/shop")]
pub struct VerifyArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Snapshots to check (ids, prefixes or `latest`); default: all.
    pub snapshots: Vec<String>,
    /// Check every snapshot (the default when none is named).
    #[arg(long, conflicts_with = "snapshots")]
    pub all: bool,
    #[arg(long)]
    pub read_data: bool,
    /// Compare the snapshot with a live database by digest.
    #[arg(long, value_name = "URL|NAME")]
    pub against: Option<String>,
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    #[arg(long, short = 'j', default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn verify(args: VerifyArgs, ctx: &Context) -> Result<u8, Failure> {
    let (cfg, repo) = args.repo.resolve()?;
    let against = match &args.against {
        Some(a) => Some(target(&cfg, a, args.password_file.clone())?),
        None => None,
    };
    let options = upkeep_backup::VerifyOptions {
        repo,
        snapshots: args.snapshots,
        read_data: args.read_data,
        against,
        jobs: usize::from(args.jobs),
    };
    let report = upkeep_backup::verify(options, ctx.cancel.clone()).await?;
    printer::report_fenced(&report, args.output.format(), verify_text)?;
    Ok(if report.ok { exit::OK } else { exit::MISMATCH })
}

fn verify_text(r: &VerifyReport) -> String {
    let mut out = String::new();
    for s in &r.snapshots {
        out.push_str(&format!(
            "{} {}\n",
            s.snapshot,
            if s.ok { "ok" } else { "DAMAGED" }
        ));
        for p in &s.problems {
            out.push_str(&format!("  {p}\n"));
        }
        if !s.changed_since.is_empty() {
            out.push_str(&format!(
                "  {} key ranges changed since the snapshot (their change fingerprints too): {}\n",
                s.changed_since.len(),
                s.changed_since.join("; ")
            ));
        }
    }
    out.push_str(&format!(
        "{} snapshots in {}, {} chunks read: {}\n",
        r.snapshots.len(),
        r.repository,
        r.chunks_checked,
        if r.ok {
            "no problems"
        } else {
            "PROBLEMS FOUND"
        }
    ));
    out
}

/// List the snapshots in a repository.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  upkeep snapshots --repo /var/backups/shop
  upkeep snapshots --repo nightly --json")]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn snapshots(args: SnapshotsArgs) -> Result<u8, Failure> {
    let (_, repo) = args.repo.resolve()?;
    let list = upkeep_backup::list_snapshots(&repo)?;
    printer::report_fenced(&list, args.output.format(), snapshots_text)?;
    Ok(exit::OK)
}

fn snapshots_text(list: &Vec<SnapshotSummary>) -> String {
    let mut rows = vec![vec![
        "ID".into(),
        "FINISHED".into(),
        "SOURCE".into(),
        "TABLES".into(),
        "ROWS".into(),
        "TAGS".into(),
    ]];
    for s in list {
        if let Some(problem) = &s.damaged {
            rows.push(vec![s.id.clone(), format!("DAMAGED: {problem}")]);
            continue;
        }
        rows.push(vec![
            s.id.clone(),
            s.finished_at.clone(),
            s.source.clone(),
            s.tables.to_string(),
            printer::thousands(s.rows),
            s.tags.join(","),
        ]);
    }
    printer::columns(&rows, &[3, 4])
}

/// Remove snapshots by a retention policy, and with --prune the chunks no snapshot uses.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  upkeep forget --repo /var/backups/shop --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --prune
  upkeep forget --repo nightly --keep-last 3 --dry-run
  upkeep forget --repo nightly 20261125T030001123Z-1a2b3c4d

A prune refuses while a damaged snapshot (listed by `upkeep snapshots`) remains: its chunks
cannot be told. Remove it by naming it. The prune also removes what killed runs left in tmp/.")]
pub struct ForgetArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Snapshots to remove (ids or unique prefixes), damaged ones included.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub keep_last: usize,
    #[arg(long, default_value_t = 0)]
    pub keep_daily: usize,
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: usize,
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: usize,
    /// Delete the chunks that no remaining snapshot references (under an exclusive lock).
    #[arg(long)]
    pub prune: bool,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn forget(args: ForgetArgs) -> Result<u8, Failure> {
    let (_, repo) = args.repo.resolve()?;
    let options = upkeep_backup::ForgetOptions {
        repo,
        snapshots: args.snapshots,
        keep_last: args.keep_last,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        prune: args.prune,
        dry_run: args.dry_run,
    };
    let report = upkeep_backup::forget(&options)?;
    printer::report_fenced(&report, args.output.format(), forget_text)?;
    Ok(exit::OK)
}

fn forget_text(r: &ForgetReport) -> String {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut out = String::new();
    for id in &r.keep {
        out.push_str(&format!("keep   {id}\n"));
    }
    for id in &r.remove {
        out.push_str(&format!("remove {id}\n"));
    }
    for d in &r.damaged {
        out.push_str(&format!(
            "damaged {}: {} (kept; name it to remove it)\n",
            d.id, d.problem
        ));
    }
    out.push_str(&format!(
        "{} snapshots kept, {verb} {}; {verb} {} unreferenced chunks ({}) and {} leftover temporary files\n",
        r.keep.len(),
        r.remove.len(),
        r.pruned_chunks,
        bytes(r.pruned_bytes),
        r.pruned_tmp_files
    ));
    out
}
