//! `upkeep restore`: schema, data by each engine's fast path, then the proof by digest.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use upkeep_core::{Batch, Digest, Engine, LogicalType, Table, TableFilter, Unselected};
use upkeep_db::{ddl, quote, Database, DbError, NativeDdl, OpenMode, Target};

use crate::manifest::{ChunkRef, Manifest, TableEntry};
use crate::repo::Repository;
use crate::{pipeline, BackupError};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemaMode {
    #[default]
    SchemaAndData,
    SchemaOnly,
    DataOnly,
}

#[derive(Clone, Debug)]
pub struct RestoreOptions {
    pub repo: std::path::PathBuf,
    /// A snapshot id, a unique prefix of one, or `latest`.
    pub snapshot: String,
    pub target: Target,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub jobs: usize,
    pub mode: SchemaMode,
    /// Drop the snapshot's tables in the target first.
    pub clean: bool,
    /// PostgreSQL: each job's memory for index builds and foreign key checks
    /// (`maintenance_work_mem`), in MiB; a server set higher keeps its own.
    pub maintenance_work_mem_mb: u64,
}

impl RestoreOptions {
    pub fn new(repo: std::path::PathBuf, target: Target) -> Self {
        Self {
            repo,
            snapshot: "latest".into(),
            target,
            include: Vec::new(),
            exclude: Vec::new(),
            jobs: 2,
            mode: SchemaMode::SchemaAndData,
            clean: false,
            maintenance_work_mem_mb: 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub snapshot: String,
    pub target: String,
    pub source_engine: Engine,
    pub target_engine: Engine,
    pub tables: Vec<TableRestore>,
    pub total_rows: u64,
    /// Every restored table's digest, read back from the target, equals the manifest's.
    pub verified: bool,
    /// Conversions that change the data's type when restoring into another engine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lossy_conversions: Vec<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRestore {
    pub table: String,
    pub rows: u64,
    pub expected: Digest,
    /// The digest read back from the target (absent with --schema-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Digest>,
}

pub async fn restore(
    options: RestoreOptions,
    cancel: CancellationToken,
) -> Result<RestoreReport, BackupError> {
    let started = Instant::now();
    let repo = Arc::new(Repository::open(&options.repo)?);
    let id = repo.resolve(&options.snapshot)?;
    let manifest = repo.load_manifest(&id)?;
    let target = &options.target;

    let filter = TableFilter::new(&options.include, &options.exclude);
    let entries: Vec<TableEntry> = filter
        .select(&manifest.tables, |t| &t.name)
        .map_err(|u| unselected(u, &format!("snapshot {id}")))?
        .into_iter()
        .map(|e| with_partition_chunks(&manifest, e.clone()))
        .collect();
    let tables: Vec<Table> = entries
        .iter()
        .map(|e| {
            manifest
                .schema
                .table(&e.name)
                .cloned()
                .ok_or_else(|| BackupError::Corrupt {
                    what: format!("snapshot {id} has data for {} but no schema", e.name),
                })
        })
        .collect::<Result<_, _>>()?;

    let mut admin = Database::connect(target, OpenMode::Create).await?;
    let engine = target.engine();
    if engine == Engine::Mysql {
        admin
            .execute_statement("SET FOREIGN_KEY_CHECKS = 0")
            .await?;
    }
    prepare_target(&mut admin, &options, &tables).await?;
    let whole = entries.len() == manifest.tables.len();
    let ddl = schema_ddl(&manifest, &tables, engine, whole);
    if options.mode != SchemaMode::DataOnly {
        for stmt in &ddl.pre_data {
            admin.execute_statement(stmt).await?;
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), "schema created");
    if engine != Engine::Sqlite && options.mode != SchemaMode::SchemaOnly {
        // Load, builds and the read-back overlap, table by table (SQLite has one writer).
        let mut models = read_models(&mut admin, &tables, &id).await?;
        for ((m, source), entry) in models.iter_mut().zip(&tables).zip(&entries) {
            // The keys are built during the pipeline: plan the read-back on the source's, with
            // the row count the manifest knows.
            if m.split_key().is_none() {
                m.primary_key.clone_from(&source.primary_key);
                m.unique.clone_from(&source.unique);
            }
            m.estimated_rows = Some(entry.rows);
        }
        let post = if options.mode == SchemaMode::DataOnly {
            Vec::new()
        } else {
            ddl.post_data
        };
        let (post, pages) = if engine == Engine::Postgres {
            let spelled = pipeline::spelled_names(&mut admin, &models).await?;
            let pages = admin.reads_page_ranges().await?;
            (pipeline::PostData::classify(post, &models, &spelled), pages)
        } else {
            // MySQL builds its keys and indexes while loading (they are in CREATE TABLE):
            // what comes after the data (views, triggers) runs once every table is loaded.
            (pipeline::PostData::after_all(post, models.len()), false)
        };
        admin.close().await;
        // Tables this restore created (and that nothing references yet) are loaded frozen.
        let frozen = engine == Engine::Postgres && options.mode != SchemaMode::DataOnly;
        let digests = pipeline::run(
            repo.clone(),
            target,
            options.jobs,
            options.maintenance_work_mem_mb,
            pages,
            frozen,
            entries.clone(),
            models,
            post,
            cancel,
        )
        .await?;
        tracing::debug!(elapsed = ?started.elapsed(), "loaded, built and read back");
        return finish(&id, &manifest, target, &entries, &tables, digests, started);
    }
    if options.mode != SchemaMode::SchemaOnly {
        load(&repo, &options, &entries, &tables, cancel.clone()).await?;
    }
    tracing::debug!(elapsed = ?started.elapsed(), "data loaded");
    if options.mode != SchemaMode::DataOnly {
        // SQLite has one writer, and --schema-only builds on empty tables: in order.
        for stmt in &ddl.post_data {
            admin.execute_statement(stmt).await?;
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), "indexes and constraints built");

    // The proof: read every restored table back and compare its digest with the manifest's.
    if options.mode == SchemaMode::SchemaOnly {
        admin.close().await;
        return Ok(report(
            &id, &manifest, target, &entries, &tables, None, started,
        ));
    }
    let read_models = read_models(&mut admin, &tables, &id).await?;
    admin.close().await;
    let digests = upkeep_db::digest_tables(target, read_models, options.jobs, cancel).await?;
    finish(&id, &manifest, target, &entries, &tables, digests, started)
}

/// Compares the digests read back with the manifest's: a mismatch names the tables.
fn finish(
    id: &str,
    manifest: &Manifest,
    target: &Target,
    entries: &[TableEntry],
    tables: &[Table],
    digests: Vec<Digest>,
    started: Instant,
) -> Result<RestoreReport, BackupError> {
    let bad: Vec<String> = entries
        .iter()
        .zip(&digests)
        .filter(|(e, d)| **d != e.digest)
        .map(|(e, d)| format!("{} (expected {}, restored {d})", e.name, e.digest))
        .collect();
    if !bad.is_empty() {
        return Err(BackupError::Mismatch {
            snapshot: id.to_owned(),
            tables: bad.join(", "),
        });
    }
    Ok(report(
        id,
        manifest,
        target,
        entries,
        tables,
        Some(digests),
        started,
    ))
}

fn report(
    id: &str,
    manifest: &Manifest,
    target: &Target,
    entries: &[TableEntry],
    tables: &[Table],
    digests: Option<Vec<Digest>>,
    started: Instant,
) -> RestoreReport {
    let engine = target.engine();
    let same_engine = manifest.engine == engine;
    let verified = digests.is_some();
    let mut digests = digests.map(Vec::into_iter);
    let report_tables: Vec<TableRestore> = entries
        .iter()
        .map(|e| TableRestore {
            table: e.name.to_string(),
            rows: e.rows,
            expected: e.digest,
            restored: digests.as_mut().and_then(Iterator::next),
        })
        .collect();
    RestoreReport {
        snapshot: id.to_owned(),
        target: target.display().to_owned(),
        source_engine: manifest.engine,
        target_engine: engine,
        total_rows: report_tables.iter().map(|t| t.rows).sum(),
        tables: report_tables,
        verified,
        lossy_conversions: if same_engine {
            Vec::new()
        } else {
            lossy_conversions(tables, engine)
        },
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// The error for a table selection that names a missing table or selects nothing in `place`.
pub(crate) fn unselected(u: Unselected, place: &str) -> BackupError {
    match u {
        Unselected::Missing(table) => DbError::TableNotFound {
            table,
            target: place.to_owned(),
        }
        .into(),
        Unselected::Empty => BackupError::NoTables {
            target: place.to_owned(),
        },
    }
}

/// Refuses to write into existing tables unless `--clean`, which drops them.
async fn prepare_target(
    db: &mut Database,
    options: &RestoreOptions,
    tables: &[Table],
) -> Result<(), BackupError> {
    let existing = db.introspect().await?;
    let engine = db.engine();
    let present: Vec<&Table> = tables
        .iter()
        .filter(|t| existing.table(&t.name).is_some())
        .collect();
    if options.mode == SchemaMode::DataOnly {
        let mut missing = tables.iter().filter(|t| existing.table(&t.name).is_none());
        if let Some(t) = missing.next() {
            return Err(DbError::TableNotFound {
                table: t.name.to_string(),
                target: db.target().display().to_owned(),
            }
            .into());
        }
        let mut full = Vec::new();
        for t in tables {
            if db.has_rows(&t.name).await? {
                full.push(t.name.to_string());
            }
        }
        if !full.is_empty() && !options.clean {
            return Err(BackupError::NotEmpty {
                target: db.target().display().to_owned(),
                tables: full.join(", "),
            });
        }
        for t in tables.iter().filter(|t| full.contains(&t.name.to_string())) {
            db.execute_statement(&format!("DELETE FROM {}", quote::table(engine, &t.name)))
                .await?;
        }
        return Ok(());
    }
    if present.is_empty() {
        return Ok(());
    }
    if !options.clean {
        let list: Vec<String> = present.iter().map(|t| t.name.to_string()).collect();
        return Err(BackupError::NotEmpty {
            target: db.target().display().to_owned(),
            tables: list.join(", "),
        });
    }
    for t in present {
        let name = quote::table(engine, &t.name);
        let sql = match engine {
            Engine::Postgres => format!("DROP TABLE IF EXISTS {name} CASCADE"),
            _ => format!("DROP TABLE IF EXISTS {name}"),
        };
        db.execute_statement(&sql).await?;
    }
    for v in &existing.views {
        db.execute_statement(&format!(
            "DROP VIEW IF EXISTS {}",
            quote::table(engine, &v.name)
        ))
        .await?;
    }
    Ok(())
}

/// The DDL that creates `tables` in `engine`. The snapshot's native DDL when all of its tables
/// go back into their own engine; otherwise the neutral model's, in native types for the same
/// engine and through the type mapping for another, with foreign keys only between the
/// restored tables.
fn schema_ddl(manifest: &Manifest, tables: &[Table], engine: Engine, whole: bool) -> NativeDdl {
    let same_engine = manifest.engine == engine;
    if same_engine && whole {
        return manifest.native_ddl.clone();
    }
    let mut ddl = NativeDdl::new(engine);
    if engine == Engine::Postgres {
        let mut schemas: Vec<&str> = tables
            .iter()
            .filter_map(|t| t.name.schema.as_deref())
            .collect();
        schemas.sort_unstable();
        schemas.dedup();
        ddl.pre_data.extend(
            schemas
                .iter()
                .map(|s| format!("CREATE SCHEMA IF NOT EXISTS {}", quote::ident(engine, s))),
        );
    }
    for t in tables {
        let mut t = t.clone();
        t.foreign_keys
            .retain(|fk| tables.iter().any(|o| o.name == fk.references));
        ddl.pre_data
            .push(ddl::create_table(engine, &t, same_engine));
        ddl.post_data.extend(ddl::post_load(engine, &t));
    }
    ddl
}

/// Chunks loaded by one statement (one COPY on PostgreSQL).
pub(crate) const RUN: usize = 16;

/// Loads every table's chunks with SQLite's one writer (the server engines load in the
/// pipeline), each run of chunks decompressed while the previous one is written.
async fn load(
    repo: &Arc<Repository>,
    options: &RestoreOptions,
    entries: &[TableEntry],
    tables: &[Table],
    cancel: CancellationToken,
) -> Result<(), BackupError> {
    let mut db = Database::connect(&options.target, OpenMode::ReadWrite).await?;
    db.execute_statement("PRAGMA foreign_keys = OFF").await?;
    for (entry, table) in entries.iter().zip(tables) {
        for first in (0..entry.chunks.len()).step_by(RUN) {
            if cancel.is_cancelled() {
                return Err(BackupError::Cancelled);
            }
            load_run(&mut db, repo, entry, table, first..first + RUN, false).await?;
        }
    }
    db.close().await;
    Ok(())
}

/// Loads the chunks `run` of `table` through one write stream (one COPY on PostgreSQL), each
/// chunk decompressed while the previous one is written; `frozen`: the table is empty and
/// the run is all of it (see [`Database::write_stream_frozen`]).
pub(crate) async fn load_run(
    db: &mut Database,
    repo: &Arc<Repository>,
    entry: &TableEntry,
    table: &Table,
    run: std::ops::Range<usize>,
    frozen: bool,
) -> Result<(), BackupError> {
    let (mut rx, producer) = read_run(repo, entry, table, run);
    let written = if frozen {
        db.write_stream_frozen(table, &mut rx).await
    } else {
        db.write_stream(table, &mut rx).await
    };
    // Closing the channel lets a producer blocked on a full channel end.
    drop(rx);
    producer
        .await
        .map_err(|e| BackupError::Internal(format!("a chunk reader failed: {e}")))??;
    written?;
    Ok(())
}

/// The chunks `run` of one table: decompressed and decoded on a blocking thread while the
/// caller writes the previous one. The channel holds two batches.
fn read_run(
    repo: &Arc<Repository>,
    entry: &TableEntry,
    table: &Table,
    run: std::ops::Range<usize>,
) -> (
    tokio::sync::mpsc::Receiver<Batch>,
    tokio::task::JoinHandle<Result<(), BackupError>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let (repo, entry, columns) = (repo.clone(), entry.clone(), table.columns.len());
    let producer = tokio::spawn(async move {
        for chunk in entry.chunks.iter().take(run.end).skip(run.start) {
            let (repo, id, size) = (repo.clone(), chunk.id.clone(), chunk.bytes);
            let batch = tokio::task::spawn_blocking(move || {
                let content = repo.get_chunk(&id, size)?;
                Batch::from_encoded(content, columns).map_err(|e| BackupError::Corrupt {
                    what: format!("chunk {id}: {e}"),
                })
            })
            .await
            .map_err(|e| BackupError::Internal(format!("a chunk decoder failed: {e}")))??;
            if u64::try_from(batch.len()).ok() != Some(chunk.rows) {
                return Err(BackupError::Corrupt {
                    what: format!(
                        "chunk {} of table {} holds {} rows, the manifest says {}",
                        chunk.id,
                        entry.name,
                        batch.len(),
                        chunk.rows
                    ),
                });
            }
            if tx.send(batch).await.is_err() {
                break;
            }
        }
        Ok(())
    });
    (rx, producer)
}

/// The target's tables as they are now, with the source's column order and logical types
/// (the spec: a comparison reads both sides with the source's types).
async fn read_models(
    db: &mut Database,
    tables: &[Table],
    snapshot: &str,
) -> Result<Vec<Table>, BackupError> {
    let target = db.target().clone();
    let schema = db.introspect().await?;
    tables
        .iter()
        .map(|source| {
            let mut t =
                schema
                    .table(&source.name)
                    .cloned()
                    .ok_or_else(|| DbError::TableNotFound {
                        table: source.name.to_string(),
                        target: target.display().to_owned(),
                    })?;
            let mut columns = Vec::with_capacity(source.columns.len());
            for sc in &source.columns {
                let mut c =
                    t.column(&sc.name)
                        .cloned()
                        .ok_or_else(|| BackupError::MissingColumn {
                            target: target.display().to_owned(),
                            snapshot: snapshot.to_owned(),
                            table: source.name.to_string(),
                            column: sc.name.clone(),
                        })?;
                c.logical = sc.logical;
                columns.push(c);
            }
            t.columns = columns;
            Ok(t)
        })
        .collect()
}

/// What a restore into another engine changes, per column.
fn lossy_conversions(tables: &[Table], engine: Engine) -> Vec<String> {
    let mut out = Vec::new();
    for t in tables {
        for c in &t.columns {
            let note = match (c.logical, engine) {
                (LogicalType::Other, _) => Some("has no equivalent: stored as text"),
                (LogicalType::FixedText, Engine::Sqlite) => {
                    Some("char(n) becomes text without a fixed width")
                }
                (LogicalType::TimestampTz, Engine::Sqlite) => Some("timestamptz becomes UTC text"),
                (LogicalType::TimestampTz, Engine::Mysql) => {
                    Some("timestamptz becomes TIMESTAMP: only 1970–2038")
                }
                (LogicalType::Float32, Engine::Sqlite) => Some("a 4-byte float becomes a double"),
                (LogicalType::Bool, Engine::Sqlite) => Some("boolean becomes an integer 0/1"),
                (LogicalType::Json, Engine::Sqlite) => Some("json becomes text"),
                (LogicalType::Decimal, Engine::Sqlite) if c.precision.is_none_or(|p| p > 15) => {
                    Some("SQLite keeps about 15 significant digits of a decimal")
                }
                (LogicalType::Decimal, Engine::Mysql) if c.precision.is_none_or(|p| p > 65) => {
                    Some("numeric beyond 65 digits becomes DECIMAL(65,30)")
                }
                (LogicalType::Float32 | LogicalType::Float64, Engine::Mysql) => {
                    Some("NaN and ±Infinity cannot be stored")
                }
                _ => None,
            };
            if let Some(n) = note {
                out.push(format!("{}.{} ({}): {n}", t.name, c.name, c.native_type));
            }
        }
    }
    out
}

/// A partitioned table stored as its partitions (`TableEntry::partitions`) with their chunks,
/// for a restore into another engine, where it is a table of its own. (On PostgreSQL it loads
/// nothing itself.)
fn with_partition_chunks(manifest: &Manifest, mut entry: TableEntry) -> TableEntry {
    fn collect(manifest: &Manifest, entry: &TableEntry, depth: usize, out: &mut Vec<ChunkRef>) {
        for name in &entry.partitions {
            if let Some(p) = manifest.tables.iter().find(|t| &t.name == name) {
                out.extend(p.chunks.iter().cloned());
                if depth < manifest.tables.len() {
                    collect(manifest, p, depth + 1, out);
                }
            }
        }
    }
    if entry.partitions.is_empty() {
        return entry;
    }
    let mut chunks = Vec::new();
    collect(manifest, &entry, 0, &mut chunks);
    entry.bytes = chunks.iter().map(|c| c.bytes).sum();
    entry.chunks = chunks;
    entry
}
