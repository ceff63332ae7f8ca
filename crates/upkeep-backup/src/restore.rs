//! `upkeep restore`: schema, data by each engine's fast path, then the proof by digest.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use upkeep_core::{
    creation_sql, prove, select_objects, Attributes, Batch, Digest, Engine, LogicalType,
    ObjectCheck, ObjectKind, ObjectStatus, Phase, SchemaObject, Table, TableFilter, TableName,
    Unselected,
};
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
    /// Whether owners (MySQL definers) and privileges are restored (`--no-owner`,
    /// `--no-privileges` leave them out, as pg_restore's do).
    pub attributes: Attributes,
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
            attributes: Attributes::default(),
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
    /// Everything is proven: every restored table's digest, read back from the target,
    /// equals the manifest's, and every schema object is there as the snapshot had it.
    pub verified: bool,
    /// Every restored table's digest equals the manifest's.
    pub data_verified: bool,
    /// The schema proof: each of the snapshot's objects and what the target has of it
    /// (another engine: what was translated, weakened or not carried over). Empty for
    /// snapshots made before upkeep listed objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<ObjectCheck>,
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
    // Into existing tables (--data-only), rows are deleted and loaded in no order that
    // foreign keys or triggers would accept.
    admin
        .begin_bulk_load(upkeep_db::BulkLoad {
            disable_triggers: options.mode == SchemaMode::DataOnly,
            ..upkeep_db::BulkLoad::default()
        })
        .await?;
    let whole = entries.len() == manifest.tables.len();
    let same_engine = manifest.engine == engine;
    let attributes = options.attributes;
    // The snapshot's objects, for a same-engine restore of a snapshot that lists them.
    let names: std::collections::HashSet<&TableName> = entries.iter().map(|e| &e.name).collect();
    let excluded = |n: &TableName| filter.excludes(n);
    let selection = crate::backup::selection(&options.include, &options.exclude, &names, &excluded);
    let chosen: Option<Vec<&SchemaObject>> = (same_engine && !manifest.objects.is_empty())
        .then(|| select_objects(&manifest.objects, selection));
    prepare_target(&mut admin, &options, &tables, chosen.as_deref()).await?;
    let ddl = match &chosen {
        Some(_) => upkeep_db::NativeDdl::new(engine),
        None => schema_ddl(&manifest, &tables, engine, whole),
    };
    let data_only = options.mode == SchemaMode::DataOnly;
    if !data_only {
        match &chosen {
            Some(objects) => {
                if attributes.owners || attributes.privileges {
                    check_roles(&mut admin, objects, attributes).await?;
                }
                for o in objects.iter().filter(|o| o.phase == Phase::PreData) {
                    create_object(&mut admin, o, attributes).await?;
                }
            }
            None => {
                for stmt in &ddl.pre_data {
                    admin.execute_statement(stmt).await?;
                }
            }
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), "schema created");
    // After the data: everything, or with --data-only the sequence positions alone (the
    // next insert must not collide with a restored row).
    let post_objects: Vec<&SchemaObject> = chosen
        .iter()
        .flatten()
        .filter(|o| o.phase == Phase::PostData)
        .filter(|o| !data_only || o.kind() == ObjectKind::SequenceValue)
        .copied()
        .collect();
    let post_sql: Vec<String> = match &chosen {
        Some(_) => post_objects
            .iter()
            .flat_map(|o| creation_sql(o, attributes))
            .collect(),
        None if data_only => ddl
            .post_data
            .iter()
            .filter(|s| is_position(s))
            .cloned()
            .collect(),
        None => ddl.post_data.clone(),
    };
    let digests = if engine != Engine::Sqlite && options.mode != SchemaMode::SchemaOnly {
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
        let (post, pages) = if engine == Engine::Postgres {
            let pages = admin.reads_page_ranges().await?;
            let post = match &chosen {
                Some(_) => pipeline::PostData::from_objects(&post_objects, &models, attributes),
                None => {
                    let spelled = pipeline::spelled_names(&mut admin, &models).await?;
                    pipeline::PostData::classify(post_sql, &models, &spelled)
                }
            };
            (post, pages)
        } else {
            // MySQL builds its keys and indexes while loading (they are in its CREATE TABLE):
            // what comes after the data (views, triggers) runs once every table is loaded.
            (pipeline::PostData::after_all(post_sql, models.len()), false)
        };
        admin.close().await;
        // Tables this restore created (and that nothing references yet) are loaded frozen.
        let frozen = engine == Engine::Postgres && !data_only;
        let digests = pipeline::run(
            repo.clone(),
            target,
            options.jobs,
            options.maintenance_work_mem_mb,
            pages,
            frozen,
            data_only,
            entries.clone(),
            models,
            post,
            cancel.clone(),
        )
        .await?;
        tracing::debug!(elapsed = ?started.elapsed(), "loaded, built and read back");
        Some(digests)
    } else {
        if options.mode != SchemaMode::SchemaOnly {
            load(&repo, &options, &entries, &tables, cancel.clone()).await?;
        }
        tracing::debug!(elapsed = ?started.elapsed(), "data loaded");
        // SQLite has one writer, and --schema-only builds on empty tables: in order.
        for stmt in &post_sql {
            admin.execute_statement(stmt).await?;
        }
        tracing::debug!(elapsed = ?started.elapsed(), "indexes and constraints built");
        let digests = if options.mode == SchemaMode::SchemaOnly {
            None
        } else {
            // The proof: read every restored table back and compare its digest.
            let read_models = read_models(&mut admin, &tables, &id).await?;
            Some(upkeep_db::digest_tables(target, read_models, options.jobs, cancel).await?)
        };
        admin.close().await;
        digests
    };
    // The schema proof: the target's objects, listed as the snapshot's were.
    let schema = match &chosen {
        Some(objects) => {
            let proven: Vec<&SchemaObject> = if data_only {
                post_objects.clone()
            } else {
                objects.clone()
            };
            let mut db = Database::connect(target, OpenMode::ReadWrite).await?;
            let found = db.schema_objects().await?;
            db.close().await;
            prove(&proven, &found, attributes)
        }
        None if !same_engine && !data_only && !manifest.objects.is_empty() => {
            let objects = select_objects(&manifest.objects, selection);
            cross_engine_checks(&objects, &tables, engine)
        }
        None => Vec::new(),
    };
    tracing::debug!(elapsed = ?started.elapsed(), "schema proven");
    finish(
        &id, &manifest, target, &entries, &tables, digests, schema, started,
    )
}

/// Statements of an older snapshot's DDL that set a sequence's or counter's position.
fn is_position(stmt: &str) -> bool {
    let s = stmt.trim_start();
    [
        "SELECT setval(",
        "SELECT pg_catalog.setval(",
        "SELECT SETVAL(",
        "DELETE FROM sqlite_sequence",
        "INSERT INTO sqlite_sequence",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

/// Runs the statements that create `object`, naming it when one fails.
async fn create_object(
    db: &mut Database,
    object: &SchemaObject,
    attributes: Attributes,
) -> Result<(), BackupError> {
    for stmt in creation_sql(object, attributes) {
        db.execute_statement(&stmt)
            .await
            .map_err(|source| BackupError::Creating {
                object: object.key.to_string(),
                source,
            })?;
    }
    Ok(())
}

/// The roles that own the objects and hold their privileges must exist in the target, or
/// the restore would fail halfway: refuses at once, naming them.
async fn check_roles(
    db: &mut Database,
    objects: &[&SchemaObject],
    attributes: Attributes,
) -> Result<(), BackupError> {
    if db.engine() != Engine::Postgres {
        return Ok(());
    }
    let mut needed = std::collections::BTreeSet::new();
    for o in objects {
        if let (true, Some(owner)) = (attributes.owners, &o.owner) {
            needed.insert(owner.value.clone());
        }
        if let (true, Some(p)) = (attributes.privileges, &o.privileges) {
            needed.extend(upkeep_db::acl_roles(&p.value));
        }
    }
    let existing = db.roles().await?;
    let missing: Vec<String> = needed
        .into_iter()
        .filter(|r| !existing.contains(r))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(BackupError::MissingRoles {
        target: db.target().display().to_owned(),
        roles: missing.join(", "),
    })
}

/// Another engine: what became of each of the snapshot's objects. Tables are recreated in
/// the target's types with their keys, unique constraints, plain indexes and foreign keys;
/// the rest of a table's definition is named as weakened, and objects of other kinds as not
/// carried over.
fn cross_engine_checks(
    objects: &[&SchemaObject],
    tables: &[Table],
    engine: Engine,
) -> Vec<ObjectCheck> {
    let table_of = |o: &SchemaObject| {
        o.table
            .as_ref()
            .and_then(|t| tables.iter().find(|x| &x.name == t))
    };
    objects
        .iter()
        .map(|o| {
            let not_carried = |why: &str| ObjectStatus::NotCarried {
                reason: why.to_owned(),
            };
            let status = match (o.kind(), table_of(o)) {
                (ObjectKind::Table, Some(t)) => {
                    let mut lost = Vec::new();
                    for c in &t.columns {
                        if c.default.is_some() && c.identity.is_none() {
                            lost.push(format!("the default of {}", c.name));
                        }
                        if c.identity.is_some() {
                            lost.push(format!("the identity of {}", c.name));
                        }
                        if c.generated.is_some() {
                            lost.push(format!(
                                "the expression of generated column {} (its values are kept)",
                                c.name
                            ));
                        }
                    }
                    if t.comment.is_some() {
                        lost.push("its comment".into());
                    }
                    if lost.is_empty() {
                        ObjectStatus::Translated {
                            detail: format!("columns in {engine} types"),
                        }
                    } else {
                        ObjectStatus::Weakened {
                            detail: format!(
                                "columns in {engine} types, without {}",
                                lost.join(", ")
                            ),
                        }
                    }
                }
                (ObjectKind::PrimaryKey, Some(_)) => ObjectStatus::Translated {
                    detail: "primary key".into(),
                },
                (ObjectKind::Unique, Some(_)) => ObjectStatus::Translated {
                    detail: "unique constraint, named by the target".into(),
                },
                (ObjectKind::ForeignKey, Some(t)) => {
                    if t.foreign_keys.is_empty() {
                        not_carried("its table's foreign keys were not read")
                    } else {
                        ObjectStatus::Translated {
                            detail: "foreign key, named by the target".into(),
                        }
                    }
                }
                (ObjectKind::Index, Some(t)) => {
                    let short = o.key.name.split(" on ").next().unwrap_or_default();
                    let plain = t.indexes.iter().any(|i| {
                        !i.columns.is_empty() && short.trim_matches('"').ends_with(&i.name)
                    });
                    if plain {
                        ObjectStatus::Translated {
                            detail: "index on the same columns".into(),
                        }
                    } else {
                        not_carried("an expression or partial index is not translated")
                    }
                }
                (ObjectKind::Schema, _) if o.key.name == "public" => ObjectStatus::Translated {
                    detail: format!("the default namespace of the {engine} database"),
                },
                (ObjectKind::Schema, _) if engine == Engine::Postgres => ObjectStatus::Translated {
                    detail: "a schema".into(),
                },
                (ObjectKind::Table, None) => not_carried("not restored"),
                (kind, _) => not_carried(&format!("a {kind} is not translated into {engine}")),
            };
            ObjectCheck {
                key: o.key.clone(),
                status,
            }
        })
        .collect()
}

/// Compares the digests read back with the manifest's (a mismatch names the tables) and
/// reports, with the schema proof.
#[allow(clippy::too_many_arguments)]
fn finish(
    id: &str,
    manifest: &Manifest,
    target: &Target,
    entries: &[TableEntry],
    tables: &[Table],
    digests: Option<Vec<Digest>>,
    schema: Vec<ObjectCheck>,
    started: Instant,
) -> Result<RestoreReport, BackupError> {
    if let Some(digests) = &digests {
        let bad: Vec<String> = entries
            .iter()
            .zip(digests)
            .filter(|(e, d)| **d != e.digest)
            .map(|(e, d)| format!("{} (expected {}, restored {d})", e.name, e.digest))
            .collect();
        if !bad.is_empty() {
            return Err(BackupError::Mismatch {
                snapshot: id.to_owned(),
                tables: bad.join(", "),
            });
        }
    }
    let engine = target.engine();
    let data_verified = digests.is_some();
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
    let schema_whole = schema.iter().all(|c| {
        matches!(
            c.status,
            ObjectStatus::Equal | ObjectStatus::Translated { .. }
        )
    });
    Ok(RestoreReport {
        snapshot: id.to_owned(),
        target: target.display().to_owned(),
        source_engine: manifest.engine,
        target_engine: engine,
        // A partitioned table stored as its partitions holds their rows: count them once.
        total_rows: report_tables
            .iter()
            .zip(entries)
            .filter(|(_, e)| e.partitions.is_empty() || !with_partitions_restored(entries, e))
            .map(|(t, _)| t.rows)
            .sum(),
        tables: report_tables,
        verified: data_verified && schema_whole,
        data_verified,
        schema,
        lossy_conversions: if manifest.engine == engine {
            Vec::new()
        } else {
            lossy_conversions(tables, engine)
        },
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Whether a partitioned table's partitions are restored too (their rows are its rows).
fn with_partitions_restored(entries: &[TableEntry], parent: &TableEntry) -> bool {
    parent
        .partitions
        .iter()
        .all(|p| entries.iter().any(|e| &e.name == p))
}

impl RestoreReport {
    /// Objects missing from the target or defined otherwise there: a same-engine restore
    /// with any of these is not a faithful copy (exit 3).
    pub fn schema_problems(&self) -> Vec<&ObjectCheck> {
        self.schema
            .iter()
            .filter(|c| {
                matches!(
                    c.status,
                    ObjectStatus::Missing | ObjectStatus::Different { .. }
                )
            })
            .collect()
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
    objects: Option<&[&SchemaObject]>,
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
    if let (true, Some(objects)) = (options.clean, objects) {
        // The snapshot's own objects go, last created first: what the restore recreates.
        for o in objects.iter().rev() {
            if let Some(sql) = upkeep_db::drop_statement(engine, o) {
                db.execute_statement(&sql).await?;
            }
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
    if let (true, true, Some(native)) = (same_engine, whole, &manifest.native_ddl) {
        return native.clone();
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
    db.begin_bulk_load(upkeep_db::BulkLoad::default()).await?;
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
