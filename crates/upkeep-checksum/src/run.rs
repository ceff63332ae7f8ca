//! Planning and running a checksum.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use upkeep_core::{Digest, Progress, ProgressEvent, TableFilter, Unselected};
use upkeep_db::{DbError, DigestSink, PlanOptions, ScanError, ScanOptions, Snapshot, Target};

use crate::{ChecksumReport, ChunkChecksum, TableChecksum};

/// What to checksum and how.
#[derive(Clone, Debug)]
pub struct ChecksumOptions {
    pub target: Target,
    /// `--tables` glob patterns; empty means every table.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Parallel readers (SQLite always reads with one).
    pub jobs: usize,
    /// Report each chunk's digest too.
    pub chunks: bool,
    pub plan: PlanOptions,
    pub scan: ScanOptions,
}

impl ChecksumOptions {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            include: Vec::new(),
            exclude: Vec::new(),
            jobs: 2,
            chunks: false,
            plan: PlanOptions::default(),
            scan: ScanOptions::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChecksumError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no table in {target} matches the given --tables/--exclude patterns")]
    NoTables { target: String },
}

impl ChecksumError {
    pub fn kind(&self) -> upkeep_core::ErrorKind {
        match self {
            Self::Db(e) => e.kind(),
            Self::NoTables { .. } => upkeep_core::ErrorKind::NotFound,
        }
    }
}

/// Reads the selected tables from one snapshot and returns their digests.
pub async fn run(
    options: ChecksumOptions,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<ChecksumReport, ChecksumError> {
    let started = Instant::now();
    let target = &options.target;
    let mut snapshot = Snapshot::open(target, options.jobs).await?;
    let filter = TableFilter::new(&options.include, &options.exclude);
    let tables: Vec<upkeep_core::Table> =
        match filter.select(&snapshot.schema().tables, |t| &t.name) {
            Ok(selected) => selected.into_iter().cloned().collect(),
            Err(unselected) => {
                snapshot.close().await;
                return Err(match unselected {
                    Unselected::Missing(table) => DbError::TableNotFound {
                        table,
                        target: target.display().to_owned(),
                    }
                    .into(),
                    Unselected::Empty => ChecksumError::NoTables {
                        target: target.display().to_owned(),
                    },
                });
            }
        };
    let planned = match snapshot.plan_tasks(&tables, options.plan).await {
        Ok(p) => p,
        Err(e) => {
            snapshot.close().await;
            return Err(e.into());
        }
    };
    let (tasks, ranges) = (planned.tasks, planned.ranges);
    progress.event(ProgressEvent::Planned {
        tables: tables.len(),
        estimated_rows: tables.iter().filter_map(|t| t.estimated_rows).sum(),
    });
    let mut warnings: Vec<String> = snapshot.warnings().to_vec();
    warnings.extend(planned.warnings);
    let jobs = snapshot.workers();
    let server_version = snapshot.server_version().to_owned();
    let consistency = snapshot.consistency().to_owned();
    let sinks: Vec<DigestSink> = (0..jobs).map(|_| DigestSink::default()).collect();
    let tables = Arc::new(tables);
    let scanned = upkeep_db::scan(
        &mut snapshot,
        tables.clone(),
        tasks,
        sinks,
        options.scan,
        progress.clone(),
        cancel,
    )
    .await;
    snapshot.close().await;
    let sinks = match scanned {
        Ok(s) => s,
        Err(ScanError::Db(e)) => return Err(e.into()),
        Err(ScanError::Sink(never)) => match never {},
    };

    let merged = DigestSink::merge(sinks);
    let total_bytes = merged.bytes;
    let merged = merged.chunks;
    let mut report_tables = Vec::with_capacity(tables.len());
    let mut total_rows = 0;
    for (ti, table) in tables.iter().enumerate() {
        let mut digest = Digest::default();
        let mut irregular = 0;
        let mut chunks = Vec::with_capacity(ranges[ti].len());
        for (ci, range) in ranges[ti].iter().enumerate() {
            let (d, irr) = merged.get(&(ti, ci)).copied().unwrap_or_default();
            digest.merge(&d);
            irregular += irr;
            chunks.push(ChunkChecksum {
                range: range.clone(),
                rows: d.rows(),
                digest: d,
            });
        }
        if irregular > 0 {
            warnings.push(format!(
                "table {}: {irregular} values do not fit their column's type and were read by the digest's `other` rule",
                table.name
            ));
        }
        total_rows += digest.rows();
        progress.event(ProgressEvent::TableDone {
            table: table.name.clone(),
            rows: digest.rows(),
        });
        report_tables.push(TableChecksum {
            table: table.name.to_string(),
            rows: digest.rows(),
            digest,
            key: table.split_key().map(|k| k.columns.clone()),
            irregular_values: irregular,
            chunks: options.chunks.then_some(chunks),
        });
    }
    let elapsed = started.elapsed();
    Ok(ChecksumReport {
        target: target.display().to_owned(),
        engine: target.engine(),
        server_version,
        consistency,
        jobs,
        tables: report_tables,
        total_rows,
        total_bytes,
        duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        #[allow(clippy::cast_precision_loss)]
        rows_per_sec: if elapsed.as_secs_f64() > 0.0 {
            total_rows as f64 / elapsed.as_secs_f64()
        } else {
            0.0
        },
        warnings,
    })
}
