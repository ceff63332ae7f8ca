//! `upkeep backup`: one consistent snapshot into the repository.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use upkeep_core::{
    select_objects, stored_row_hash, Batch, Digest, Engine, ObjectKind, Progress, SchemaObject,
    Selection, TableFilter,
};
use upkeep_db::{BatchSink, PlanOptions, ScanError, ScanOptions, ScanTask, Snapshot, Target};

use crate::chunker::{RawChunk, RowChunker};
use crate::manifest::{ChunkRef, Manifest, Segment, TableEntry, MANIFEST_FORMAT, MANIFEST_VERSION};
use crate::repo::Repository;
use crate::BackupError;

#[derive(Clone, Debug)]
pub struct BackupOptions {
    pub target: Target,
    pub repo: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub jobs: usize,
    pub tags: Vec<String>,
    /// zstd level for a new repository (an existing one keeps its own).
    pub zstd_level: i32,
    pub plan: PlanOptions,
    /// Read every key range, even those whose change fingerprint says they are as the
    /// parent snapshot holds them (restic's `--force`).
    pub force: bool,
    /// Read everything when the parent's rows were, in part, last read longer ago than this
    /// (`--full-every`): change detection is a claim about someone else's server, so its
    /// trust is bounded in time.
    pub full_every: std::time::Duration,
}

/// `--full-every`'s default: a week.
pub const DEFAULT_FULL_EVERY: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

impl BackupOptions {
    pub fn new(target: Target, repo: PathBuf) -> Self {
        Self {
            target,
            repo,
            include: Vec::new(),
            exclude: Vec::new(),
            jobs: 2,
            tags: Vec::new(),
            zstd_level: 1,
            plan: PlanOptions::default(),
            force: false,
            full_every: DEFAULT_FULL_EVERY,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupReport {
    pub snapshot: String,
    pub repository: String,
    pub source: String,
    pub engine: Engine,
    pub tables: Vec<TableBackup>,
    pub total_rows: u64,
    /// Canonical bytes read from the database.
    pub bytes_read: u64,
    /// Compressed bytes of the chunks this backup added to the repository.
    pub bytes_stored: u64,
    pub chunks_total: u64,
    pub chunks_new: u64,
    /// bytes_read / bytes_stored: how much smaller the new data is than what was read.
    pub dedup_ratio: f64,
    /// The earlier snapshot of the same source whose unchanged key ranges were not read
    /// again (PostgreSQL ranges, MariaDB whole tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Key ranges in all, and those found unchanged since the parent and not read.
    pub ranges_total: u64,
    pub ranges_unchanged: u64,
    pub rows_unchanged: u64,
    /// Why no range was taken from a parent, when none was: the first snapshot of the
    /// source, `--force`, a restart of the server, the last full read too long ago…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_read_reason: Option<String>,
    /// When the oldest rows of this snapshot were read (this backup's start when it took
    /// nothing from a parent).
    pub last_full_read_at: String,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableBackup {
    pub table: String,
    pub rows: u64,
    pub digest: Digest,
    pub bytes: u64,
    pub chunks: usize,
}

struct TaskState {
    chunker: RowChunker,
    refs: Vec<ChunkRef>,
    digest: Digest,
    fingerprint: Option<String>,
}

/// What one worker read and stored.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    bytes_read: u64,
    bytes_stored: u64,
    chunks_new: u64,
    ranges_unchanged: u64,
    rows_unchanged: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Self) {
        self.bytes_read += o.bytes_read;
        self.bytes_stored += o.bytes_stored;
        self.chunks_new += o.chunks_new;
        self.ranges_unchanged += o.ranges_unchanged;
        self.rows_unchanged += o.rows_unchanged;
    }
}

/// A key range of the parent snapshot, by (table, range): its chunks, digest and fingerprint.
type ParentSegments = HashMap<(usize, usize), (Vec<ChunkRef>, Digest, String)>;

/// Cuts one worker's rows into chunks and stores the new ones.
struct ChunkSink {
    repo: Arc<Repository>,
    level: i32,
    /// Chunk sizes: min, target, max.
    sizes: (usize, usize, usize),
    open: HashMap<(usize, usize), TaskState>,
    done: Vec<((usize, usize), TaskState)>,
    stats: Stats,
    parents: Arc<ParentSegments>,
    /// Per table, the positions of its `json` columns, stored as the server prints them and
    /// canonicalized for the digest.
    json: Arc<Vec<Vec<usize>>>,
    /// The tables' names, for errors.
    names: Arc<Vec<upkeep_core::TableName>>,
    /// A row in digest form.
    scratch: Vec<u8>,
}

/// The open state of `task`'s chunk (a free function so that the sink's other fields stay
/// borrowable beside it).
fn open_state<'s>(
    open: &'s mut HashMap<(usize, usize), TaskState>,
    (min, target, max): (usize, usize, usize),
    task: &ScanTask,
) -> &'s mut TaskState {
    open.entry((task.table, task.chunk))
        .or_insert_with(|| TaskState {
            chunker: RowChunker::new(min, target, max),
            refs: Vec::new(),
            digest: Digest::default(),
            fingerprint: None,
        })
}

/// Stores `chunk` (when the repository lacks it) and adds it to the task's chunk list.
fn store(
    repo: &Repository,
    level: i32,
    stats: &mut Stats,
    state: &mut TaskState,
    chunk: RawChunk,
) -> Result<(), BackupError> {
    let (id, written) = repo.put_chunk(&chunk.content, chunk.rows, level)?;
    if written > 0 {
        stats.chunks_new += 1;
        stats.bytes_stored += written;
    }
    state.refs.push(ChunkRef {
        id,
        rows: chunk.rows,
        bytes: u64::try_from(chunk.content.len()).unwrap_or(u64::MAX),
    });
    Ok(())
}

impl BatchSink for ChunkSink {
    type Error = BackupError;

    fn batch(&mut self, task: &ScanTask, batch: Batch) -> Result<(), BackupError> {
        self.stats.bytes_read += u64::try_from(batch.byte_len()).unwrap_or(u64::MAX);
        let state = open_state(&mut self.open, self.sizes, task);
        let json = &self.json[task.table];
        for row in batch.rows() {
            let hash = stored_row_hash(row, json, &mut self.scratch).map_err(|e| {
                BackupError::MalformedRow {
                    table: self.names[task.table].to_string(),
                    offset: e.offset,
                }
            })?;
            state.digest.add_hash(&hash);
            if let Some(chunk) = state.chunker.push(row, &hash) {
                store(&self.repo, self.level, &mut self.stats, state, chunk)?;
            }
        }
        Ok(())
    }

    fn fingerprint(
        &mut self,
        task: &ScanTask,
        fingerprint: String,
        unchanged: bool,
    ) -> Result<u64, BackupError> {
        if !unchanged {
            open_state(&mut self.open, self.sizes, task).fingerprint = Some(fingerprint);
            return Ok(0);
        }
        let key = (task.table, task.chunk);
        let (refs, digest) = self
            .parents
            .get(&key)
            .map(|(refs, digest, _)| (refs.clone(), *digest))
            .ok_or_else(|| BackupError::Corrupt {
                what: format!("the parent snapshot has no range {} of a table", task.chunk),
            })?;
        self.stats.ranges_unchanged += 1;
        self.stats.rows_unchanged += digest.rows();
        let (min, target, max) = self.sizes;
        self.done.push((
            key,
            TaskState {
                chunker: RowChunker::new(min, target, max),
                refs,
                digest,
                fingerprint: Some(fingerprint),
            },
        ));
        Ok(digest.rows())
    }

    fn chunk_done(
        &mut self,
        task: &ScanTask,
        _rows: u64,
        _irregular: u64,
    ) -> Result<(), BackupError> {
        let key = (task.table, task.chunk);
        // A chunk without rows never opened a state: it adds nothing.
        if let Some(mut state) = self.open.remove(&key) {
            if let Some(last) = state.chunker.finish() {
                store(&self.repo, self.level, &mut self.stats, &mut state, last)?;
            }
            self.done.push((key, state));
        }
        Ok(())
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Takes a snapshot of the selected tables into the repository.
pub async fn backup(
    options: BackupOptions,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let started_at = now();
    let repo = Arc::new(Repository::open_or_init(&options.repo, options.zstd_level)?);
    let lock = repo.lock(false)?;
    let target = &options.target;
    let mut snapshot = Snapshot::open_fingerprinted(target, options.jobs).await?;
    let result = run(
        &options,
        &repo,
        &mut snapshot,
        progress,
        cancel,
        &started_at,
    )
    .await;
    snapshot.close().await;
    let Ran {
        manifest,
        stats: sinks_stats,
        warnings,
        parent,
        full_read_reason,
        ranges_total,
    } = result?;
    // The manifest goes last: a run killed before this line leaves chunks, never a snapshot.
    // A run whose lock was taken away may have had its new chunks pruned: no snapshot then.
    lock.check()?;
    repo.put_manifest(&manifest)?;
    drop(lock);
    let Stats {
        bytes_read,
        bytes_stored,
        chunks_new,
        ranges_unchanged,
        rows_unchanged,
    } = sinks_stats;
    let tables: Vec<TableBackup> = manifest
        .tables
        .iter()
        .map(|t| TableBackup {
            table: t.name.to_string(),
            rows: t.rows,
            digest: t.digest,
            bytes: t.bytes,
            chunks: t.chunks.len(),
        })
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let dedup_ratio = if bytes_stored == 0 {
        bytes_read as f64
    } else {
        bytes_read as f64 / bytes_stored as f64
    };
    Ok(BackupReport {
        snapshot: manifest.id.clone(),
        repository: repo.location(),
        source: target.display().to_owned(),
        engine: target.engine(),
        // A partitioned table stored as its partitions holds their rows: counted once.
        total_rows: manifest
            .tables
            .iter()
            .filter(|t| t.partitions.is_empty())
            .map(|t| t.rows)
            .sum(),
        chunks_total: manifest.tables.iter().map(|t| t.chunks.len() as u64).sum(),
        tables,
        bytes_read,
        bytes_stored,
        chunks_new,
        dedup_ratio,
        parent,
        ranges_total,
        ranges_unchanged,
        rows_unchanged,
        full_read_reason,
        last_full_read_at: manifest.full_read_at.clone().unwrap_or_default(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        warnings,
    })
}

/// What a backup's read produced, before its manifest is stored.
struct Ran {
    manifest: Manifest,
    stats: Stats,
    warnings: Vec<String>,
    parent: Option<String>,
    full_read_reason: Option<String>,
    ranges_total: u64,
}

/// The parent whose unchanged ranges are not read again: the latest snapshot of the same
/// source, when its fingerprints were taken under this snapshot's identity (the same
/// uninterrupted run of the same server), its source was not ahead of this one, and its
/// oldest rows were read within `full_every`. Otherwise `Err` says why everything is read.
fn find_parent(
    repo: &Repository,
    snapshot: &Snapshot,
    options: &BackupOptions,
) -> Result<Result<Manifest, String>, BackupError> {
    let target = &options.target;
    if options.force {
        return Ok(Err("--force".into()));
    }
    let Some(identity) = snapshot.change_identity() else {
        return Ok(Err(match target.engine() {
            Engine::Postgres => "the server offers no change detection to this role (it needs \
                                 PostgreSQL 13+ and pg_control_system())"
                .into(),
            Engine::Mysql => "the server offers no change detection to this user (it needs \
                              MariaDB and the PROCESS privilege)"
                .into(),
            Engine::Sqlite => "SQLite has no change detection".into(),
        }));
    };
    let mut ids = repo.snapshot_ids()?;
    ids.sort_unstable_by(|a, b| b.cmp(a));
    for id in ids {
        // A manifest that does not load is verify's to report; it is just no parent.
        let Ok(m) = repo.load_manifest(&id) else {
            continue;
        };
        if m.engine != target.engine() || m.source != target.display() {
            continue;
        }
        let prefix = format!("{identity}/");
        let segments = || m.tables.iter().flat_map(|t| &t.segments);
        if !segments().any(|s| s.fingerprint.starts_with(&prefix)) {
            return Ok(Err(if segments().next().is_some() {
                format!(
                    "the source is not the server run that snapshot {id} read (it restarted, \
                     recovered from a crash, or was replaced since)"
                )
            } else {
                format!("snapshot {id} holds no change fingerprints")
            }));
        }
        if let (Some(then), Some(now)) = (m.change_position, snapshot.change_position()) {
            if now < then {
                return Ok(Err(format!(
                    "the source's WAL position is behind snapshot {id}'s"
                )));
            }
        }
        let read_at = m
            .full_read_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let Some(read_at) = read_at else {
            return Ok(Err(format!(
                "snapshot {id} does not say when it was read in full"
            )));
        };
        let age = chrono::Utc::now().signed_duration_since(read_at);
        if age.to_std().is_ok_and(|age| age > options.full_every) {
            return Ok(Err(format!(
                "the last full read ({}) is older than --full-every {}",
                read_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                humantime::format_duration(options.full_every)
            )));
        }
        return Ok(Ok(m));
    }
    Ok(Err(
        "no earlier snapshot of this source in the repository".into()
    ))
}

/// The objects that go with `--tables` / `--exclude` (see [`Selection`]).
pub(crate) fn selection<'a>(
    include: &[String],
    exclude: &[String],
    tables: &'a std::collections::HashSet<&'a upkeep_core::TableName>,
    excluded: &'a dyn Fn(&upkeep_core::TableName) -> bool,
) -> Selection<'a> {
    if !include.is_empty() {
        Selection::Tables(tables)
    } else if !exclude.is_empty() {
        Selection::Except(tables, excluded)
    } else {
        Selection::All
    }
}

/// What a table's rows are spelled with besides its columns: the definitions of the types,
/// domains, collations and extensions it uses (renaming an enum's value changes rows
/// without writing them). `None` when the objects do not list the table (older snapshots).
fn type_definitions(
    objects: &[SchemaObject],
    table: &upkeep_core::TableName,
) -> Option<Vec<String>> {
    let start = objects
        .iter()
        .find(|o| o.kind() == ObjectKind::Table && o.table.as_ref() == Some(table))?;
    let by_key: HashMap<&upkeep_core::ObjectKey, &SchemaObject> =
        objects.iter().map(|o| (&o.key, o)).collect();
    let mut seen = std::collections::BTreeMap::new();
    let mut stack: Vec<&upkeep_core::ObjectKey> = start.needs.iter().collect();
    while let Some(k) = stack.pop() {
        let Some(o) = by_key.get(k) else { continue };
        let spelling = matches!(
            o.kind(),
            ObjectKind::Type | ObjectKind::Domain | ObjectKind::Collation | ObjectKind::Extension
        );
        if spelling && seen.insert(k.to_string(), o.definition.clone()).is_none() {
            stack.extend(o.needs.iter());
        }
    }
    Some(seen.into_iter().map(|(k, d)| format!("{k}: {d}")).collect())
}

/// The parent's ranges of `table`, when they can be read again: the same table definition
/// and type definitions, every chunk still in the repository, and not so much growth that
/// the last range (which takes the new rows) would be read by one worker alone.
fn parent_ranges<'p>(
    repo: &Repository,
    parent: &'p Manifest,
    same_types: bool,
    table: &upkeep_core::Table,
) -> Result<Option<&'p TableEntry>, BackupError> {
    if !same_types {
        return Ok(None);
    }
    let Some(entry) = parent.tables.iter().find(|e| e.name == table.name) else {
        return Ok(None);
    };
    let unestimated = |t: &upkeep_core::Table| upkeep_core::Table {
        estimated_rows: None,
        ..t.clone()
    };
    let same_definition = parent
        .schema
        .tables
        .iter()
        .find(|t| t.name == table.name)
        .is_some_and(|t| unestimated(t) == unestimated(table));
    let grown = table
        .estimated_rows
        .is_some_and(|n| n > entry.rows + entry.rows / 2 + 100_000);
    if entry.segments.is_empty() || !same_definition || grown {
        return Ok(None);
    }
    for c in &entry.chunks {
        if !repo.has_chunk(&c.id)? {
            return Ok(None);
        }
    }
    Ok(Some(entry))
}

async fn run(
    options: &BackupOptions,
    repo: &Arc<Repository>,
    snapshot: &mut Snapshot,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    started_at: &str,
) -> Result<Ran, BackupError> {
    let target = &options.target;
    let filter = TableFilter::new(&options.include, &options.exclude);
    let tables: Vec<upkeep_core::Table> = filter
        .select(&snapshot.schema().tables, |t| &t.name)
        .map_err(|u| crate::restore::unselected(u, target.display()))?
        .into_iter()
        .cloned()
        .collect();
    let derived = derived_parents(&snapshot.schema().tables, &tables);
    let table_names: Vec<upkeep_core::TableName> = tables.iter().map(|t| t.name.clone()).collect();
    let objects: Vec<SchemaObject> = {
        let all_objects = snapshot.schema_objects().await?;
        let names: std::collections::HashSet<&upkeep_core::TableName> =
            table_names.iter().collect();
        let excluded = |n: &upkeep_core::TableName| filter.excludes(n);
        select_objects(
            &all_objects,
            selection(&options.include, &options.exclude, &names, &excluded),
        )
        .into_iter()
        .cloned()
        .collect()
    };
    let mut warnings: Vec<String> = snapshot.warnings().to_vec();
    let identity = snapshot.change_identity().map(str::to_owned);
    let (parent, mut full_read_reason) = match find_parent(repo, snapshot, options)? {
        Ok(parent) => (Some(parent), None),
        Err(reason) => (None, Some(reason)),
    };
    let mut given = vec![None; tables.len()];
    let mut parents = ParentSegments::new();
    if let Some(parent) = &parent {
        for (ti, table) in tables.iter().enumerate() {
            let types = type_definitions(&objects, &table.name);
            let same_types =
                types.is_some() && types == type_definitions(&parent.objects, &table.name);
            let Some(entry) = parent_ranges(repo, parent, same_types, table)? else {
                continue;
            };
            let mut chunks = entry.chunks.iter();
            for (ci, seg) in entry.segments.iter().enumerate() {
                let refs: Vec<ChunkRef> = chunks.by_ref().take(seg.chunks).cloned().collect();
                parents.insert((ti, ci), (refs, seg.digest, seg.fingerprint.clone()));
            }
            given[ti] = Some(entry.segments.iter().map(|s| s.range.clone()).collect());
        }
    }
    let planned = snapshot
        .plan_tasks_given(&tables, options.plan, &given)
        .await?;
    warnings.extend(planned.warnings);
    let mut tasks = planned.tasks;
    tasks.retain(|t| derived[t.table].is_none());
    for task in &mut tasks {
        task.unchanged_if = parents
            .get(&(task.table, task.chunk))
            .map(|(_, _, fingerprint)| fingerprint.clone());
    }
    let ranges_total = tasks.len() as u64;
    let parents = Arc::new(parents);
    progress.event(upkeep_core::ProgressEvent::Planned {
        tables: tables.len(),
        estimated_rows: tables
            .iter()
            .zip(&derived)
            .filter(|(_, d)| d.is_none())
            .filter_map(|(t, _)| t.estimated_rows)
            .sum(),
    });
    let c = repo.config();
    let (level, sizes) = (
        c.zstd_level,
        (c.chunk_min_bytes, c.chunk_target_bytes, c.chunk_max_bytes),
    );
    // JSON is stored as the server prints it (`jsonb` keeps `1.0`, `json` its spacing and key
    // order), so that a restore writes back the same text; the digest canonicalizes it.
    // SQLite's JSON values are stored canonical: its reader's typed values (REAL, INTEGER)
    // have no text of the server's own.
    let raw_json = target.engine() != Engine::Sqlite;
    let (json, read_tables): (Vec<Vec<usize>>, Vec<upkeep_core::Table>) = tables
        .iter()
        .map(|t| {
            if raw_json {
                (t.json_columns(), t.with_json_as_text())
            } else {
                (Vec::new(), t.clone())
            }
        })
        .unzip();
    let json = Arc::new(json);
    let names = Arc::new(table_names.clone());
    let sinks: Vec<ChunkSink> = (0..snapshot.workers())
        .map(|_| ChunkSink {
            repo: repo.clone(),
            level,
            sizes,
            open: HashMap::new(),
            done: Vec::new(),
            stats: Stats::default(),
            parents: parents.clone(),
            json: json.clone(),
            names: names.clone(),
            scratch: Vec::new(),
        })
        .collect();
    let scan_options = ScanOptions {
        ordered: true,
        fingerprints: identity.is_some(),
        ..ScanOptions::default()
    };
    let sinks = upkeep_db::scan(
        snapshot,
        Arc::new(read_tables),
        tasks,
        sinks,
        scan_options,
        progress,
        cancel,
    )
    .await
    .map_err(|e| match e {
        ScanError::Db(upkeep_db::DbError::Cancelled) => BackupError::Cancelled,
        ScanError::Db(e) => e.into(),
        ScanError::Sink(e) => e,
    })?;
    let mut done: HashMap<(usize, usize), TaskState> = HashMap::new();
    let mut stats = Stats::default();
    for sink in sinks {
        stats += sink.stats;
        done.extend(sink.done);
    }
    let mut entries = Vec::with_capacity(tables.len());
    for (ti, table) in tables.iter().enumerate() {
        let mut digest = Digest::default();
        let mut chunks = Vec::new();
        let mut segments = Vec::new();
        let mut fingerprinted = true;
        for (ci, range) in planned.ranges[ti].iter().enumerate() {
            match done.remove(&(ti, ci)) {
                Some(state) => {
                    digest.merge(&state.digest);
                    match state.fingerprint {
                        Some(fingerprint) => segments.push(Segment {
                            range: range.clone(),
                            fingerprint,
                            chunks: state.refs.len(),
                            digest: state.digest,
                        }),
                        None => fingerprinted = false,
                    }
                    chunks.extend(state.refs);
                }
                None => fingerprinted = false,
            }
        }
        if !fingerprinted {
            segments.clear();
        }
        entries.push(TableEntry {
            name: table.name.clone(),
            rows: digest.rows(),
            digest,
            bytes: chunks.iter().map(|c| c.bytes).sum(),
            chunks,
            segments,
            partitions: Vec::new(),
        });
    }
    // Partitioned tables not read: their partitions' sums, deepest first.
    let mut order: Vec<usize> = (0..tables.len())
        .filter(|&i| derived[i].is_some())
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(partition_depth(&tables, i)));
    for i in order {
        let children = derived[i].as_deref().unwrap_or_default();
        let mut digest = Digest::default();
        for &c in children {
            digest.merge(&entries[c].digest);
        }
        let e = &mut entries[i];
        e.rows = digest.rows();
        e.digest = digest;
        e.partitions = children.iter().map(|&c| tables[c].name.clone()).collect();
    }
    let id = format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ"),
        rand::random::<u32>()
    );
    let mut schema = snapshot.schema().clone();
    let selected: std::collections::HashSet<&upkeep_core::TableName> =
        tables.iter().map(|t| &t.name).collect();
    schema.tables.retain(|t| selected.contains(&t.name));
    let full_read_at = match &parent {
        Some(p) if stats.ranges_unchanged > 0 => p.full_read_at.clone(),
        Some(p) => {
            full_read_reason = Some(format!("no range was unchanged since snapshot {}", p.id));
            Some(started_at.to_owned())
        }
        None => Some(started_at.to_owned()),
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        version: MANIFEST_VERSION,
        id,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        engine: target.engine(),
        server_version: snapshot.server_version().to_owned(),
        source: target.display().to_owned(),
        started_at: started_at.to_owned(),
        finished_at: now(),
        consistency: snapshot.consistency().to_owned(),
        tags: options.tags.clone(),
        digest_version: upkeep_core::DIGEST_VERSION,
        full_read_at,
        change_position: snapshot.change_position(),
        schema,
        objects,
        native_ddl: None,
        tables: entries,
    };
    Ok(Ran {
        manifest,
        stats,
        warnings,
        parent: parent.map(|p| p.id),
        full_read_reason,
        ranges_total,
    })
}

/// Per selected table, the positions of its partitions when it is a partitioned table that is
/// not read: its rows are theirs, and its digest the sum of theirs (the spec). That holds when
/// every partition is in the backup and has the parent's columns in the parent's order (a
/// table attached as a partition may order them otherwise); such a parent is read itself.
fn derived_parents(
    all: &[upkeep_core::Table],
    selected: &[upkeep_core::Table],
) -> Vec<Option<Vec<usize>>> {
    let same_columns = |a: &upkeep_core::Table, b: &upkeep_core::Table| {
        a.columns.len() == b.columns.len()
            && a.columns.iter().zip(&b.columns).all(|(x, y)| {
                x.name == y.name && x.logical == y.logical && x.native_type == y.native_type
            })
    };
    selected
        .iter()
        .map(|p| {
            if p.kind != upkeep_core::TableKind::Partitioned {
                return None;
            }
            let of_p = |t: &&upkeep_core::Table| t.partition_of.as_ref() == Some(&p.name);
            let children: Vec<usize> = selected
                .iter()
                .enumerate()
                .filter(|(_, t)| of_p(t))
                .map(|(i, _)| i)
                .collect();
            let everyone = all.iter().filter(of_p).count() == children.len();
            (everyone && children.iter().all(|&c| same_columns(&selected[c], p)))
                .then_some(children)
        })
        .collect()
}

/// How many partitioned tables above `i` there are among `tables`.
fn partition_depth(tables: &[upkeep_core::Table], i: usize) -> usize {
    let mut depth = 0;
    let mut at = &tables[i];
    while let Some(parent) = at.partition_of.as_ref() {
        match tables.iter().find(|t| &t.name == parent) {
            Some(p) if depth < tables.len() => {
                depth += 1;
                at = p;
            }
            _ => break,
        }
    }
    depth
}
