//! The restore pipeline of the server engines: every table goes through load → index builds →
//! read-back digest as soon as it can, on one pool of `jobs` connections, so that no core idles at a
//! barrier between phases (pg_restore's schedule leaves one core idle while the largest
//! table's index builds and its foreign key check run alone).
//!
//! - PostgreSQL, into tables the restore created: each table is loaded whole by one worker,
//!   in one transaction that truncates it and runs one binary `COPY … FREEZE`, largest table
//!   first. Its rows are written frozen and its pages all-visible, so the index builds,
//!   foreign key checks and read-back that follow check no row's visibility and set no hint
//!   bit (which dirties every page for a second write). The benchmark's 6.4 M rows restored
//!   in 6.8–7.9 s this way against 9.1–10.1 s with runs loaded in parallel, unfrozen.
//! - Otherwise (MySQL/MariaDB, `--data-only`) a table's chunks are loaded in runs of [`RUN`]
//!   chunks, one statement stream each. A worker prefers a table nobody else is loading, so a
//!   large table is mostly written in key order while the other workers load the others.
//! - Once all of a table's runs are in, its keys, unique constraints and indexes are built;
//!   then its digest is read back in key ranges, in parallel with whatever else is running.
//! - Once every table's builds are done, foreign keys are added `NOT VALID` (instant) and the
//!   rest of the post-data DDL runs, in order, on one connection; each foreign key is then
//!   validated as a job of its own, beside the remaining digests. Validation takes only a
//!   SHARE UPDATE EXCLUSIVE lock, so reads and other validations go on.
//! - MySQL/MariaDB builds keys while loading (they are in its CREATE TABLE): a table is read
//!   back by key ranges once loaded, and views and triggers come after every load.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use upkeep_core::{
    creation_sql, Attributes, Digest, Engine, KeyRange, ObjectKind, SchemaObject, Table, TableKind,
};
use upkeep_db::pg_post::{self, PostStatement};
use upkeep_db::{quote, Database, OpenMode, PlanOptions, Target};

use crate::manifest::TableEntry;
use crate::repo::Repository;
use crate::restore::{load_run, RUN};
use crate::BackupError;

/// What the pipeline runs after the data: per table builds, and what runs once every build
/// is done.
#[derive(Debug, Default)]
pub(crate) struct PostData {
    /// Per table (as indexed in the restore), its key, constraint and index builds.
    builds: Vec<Vec<String>>,
    /// What runs once every table is built, before the foreign keys: builds whose table
    /// could not be told (older snapshots), and, from a snapshot's objects, everything after
    /// the data that is not a build or a foreign key, in the objects' order.
    orphan_builds: Vec<String>,
    /// Foreign keys, each split into its `NOT VALID` form and its validation (`None` when it
    /// is added as it is, e.g. on a partitioned table).
    foreign_keys: Vec<(String, Option<Validation>)>,
    /// Everything else, in order (sequence positions, views, triggers, comments…).
    rest: Vec<String>,
}

impl PostData {
    /// Every statement runs, in order, once every table is loaded.
    pub(crate) fn after_all(post_data: Vec<String>, tables: usize) -> Self {
        Self {
            builds: vec![Vec::new(); tables],
            rest: post_data,
            ..Self::default()
        }
    }

    /// PostgreSQL, from a snapshot's objects: each table's keys, checks and indexes are built
    /// as soon as it is loaded (plain keys as an index build plus an instant attachment);
    /// their comments, and every other object (attachments, triggers, rules, policies,
    /// materialized views…), run in order once every table is built; foreign keys last,
    /// added `NOT VALID` and validated as jobs of their own.
    pub(crate) fn from_objects(
        objects: &[&SchemaObject],
        tables: &[Table],
        attributes: Attributes,
    ) -> Self {
        let mut out = Self {
            builds: vec![Vec::new(); tables.len()],
            ..Self::default()
        };
        let index_of: HashMap<&upkeep_core::TableName, usize> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| (&t.name, i))
            .collect();
        for o in objects {
            let table = o.table.as_ref().and_then(|t| index_of.get(t)).copied();
            let all = creation_sql(o, attributes);
            let created = if attributes.owners || o.sql_without_owner.is_empty() {
                o.sql.len()
            } else {
                o.sql_without_owner.len()
            };
            let (create, attrs) = all.split_at(created.min(all.len()));
            match (o.kind(), table) {
                (kind, Some(i)) if kind.is_table_build() => {
                    let plain = tables[i].kind == TableKind::Table;
                    let mut stmts = create.iter();
                    if let Some(first) = stmts.next() {
                        let split = plain.then(|| pg_post::key_as_index(first)).flatten();
                        out.builds[i].extend(split.unwrap_or_else(|| vec![first.clone()]));
                    }
                    out.builds[i].extend(stmts.cloned());
                    out.orphan_builds.extend(attrs.iter().cloned());
                }
                (ObjectKind::ForeignKey, table) => {
                    let plain = table.is_some_and(|i| tables[i].kind == TableKind::Table);
                    for stmt in create {
                        match pg_post::classify(stmt) {
                            PostStatement::ForeignKey { table, name }
                                if plain && !stmt.trim_end().ends_with("NOT VALID") =>
                            {
                                let validate = Validation {
                                    table: table.to_owned(),
                                    name: name.to_owned(),
                                };
                                out.foreign_keys.push((
                                    format!("{} NOT VALID", stmt.trim_end()),
                                    Some(validate),
                                ));
                            }
                            _ => out.foreign_keys.push((stmt.clone(), None)),
                        }
                    }
                    out.rest.extend(attrs.iter().cloned());
                }
                _ => out.orphan_builds.extend(all.iter().cloned()),
            }
        }
        for builds in &mut out.builds {
            builds.sort_by_key(|b| b.starts_with("ALTER TABLE"));
        }
        out
    }

    /// PostgreSQL: sorts `post_data` by what each statement waits for. `spelled` holds each table's name
    /// as the server's `quote_ident` spells it, which is how the native DDL names it.
    pub(crate) fn classify(post_data: Vec<String>, tables: &[Table], spelled: &[String]) -> Self {
        let mut out = Self {
            builds: vec![Vec::new(); tables.len()],
            ..Self::default()
        };
        let index_of: HashMap<&str, usize> = spelled
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        for stmt in post_data {
            match pg_post::classify(&stmt) {
                PostStatement::Build { table } => match table.and_then(|t| index_of.get(t)) {
                    Some(&i) if tables[i].kind == TableKind::Table => {
                        let split = pg_post::key_as_index(&stmt);
                        out.builds[i].extend(split.unwrap_or_else(|| vec![stmt]));
                    }
                    Some(&i) => out.builds[i].push(stmt),
                    None => out.orphan_builds.push(stmt),
                },
                PostStatement::ForeignKey { table, name } => {
                    let plain = index_of
                        .get(table)
                        .is_some_and(|&i| tables[i].kind == TableKind::Table);
                    if plain && !stmt.trim_end().ends_with("NOT VALID") {
                        let validate = Validation {
                            table: table.to_owned(),
                            name: name.to_owned(),
                        };
                        out.foreign_keys
                            .push((format!("{} NOT VALID", stmt.trim_end()), Some(validate)));
                    } else {
                        out.foreign_keys.push((stmt, None));
                    }
                }
                PostStatement::Other => out.rest.push(stmt),
            }
        }
        // Index builds first: they share the table with each other and with the read-back;
        // the ALTER TABLEs that lock it come after them.
        for builds in &mut out.builds {
            builds.sort_by_key(|b| b.starts_with("ALTER TABLE"));
        }
        out
    }
}

/// A foreign key added `NOT VALID`, to validate: its table and name as the DDL spells them.
#[derive(Debug)]
struct Validation {
    table: String,
    name: String,
}

/// A part of a table's read-back.
#[derive(Debug)]
enum ReadRange {
    Keys(KeyRange),
    /// Pages `start..end` (the last range open ended), read with a TID range scan.
    Pages(std::ops::Range<u64>, bool),
}

/// Pages per read-back range (16 MB of 8 kB pages).
const PAGES_PER_RANGE: u64 = 2048;

enum Job {
    Load {
        table: usize,
        run: std::ops::Range<usize>,
    },
    Build {
        table: usize,
        stmt: String,
    },
    Plan {
        table: usize,
    },
    Digest {
        table: usize,
        range: ReadRange,
    },
    /// Orphan builds, foreign keys `NOT VALID` and the rest, in order, on one connection.
    Tail,
    Validate(Validation),
}

#[derive(Default)]
struct TableState {
    /// Read back by page ranges (a plain table on PostgreSQL 14+), which need no index.
    by_pages: bool,
    /// A PostgreSQL partitioned table: nothing to load, read back once every table is loaded.
    partitioned: bool,
    /// Chunk runs not yet loaded (all of the table in one when it is loaded frozen).
    runs: VecDeque<std::ops::Range<usize>>,
    loading: usize,
    bytes_left: u64,
    builds: VecDeque<String>,
    building: usize,
    /// The running build is an ALTER TABLE.
    exclusive: bool,
    planned: bool,
    ranges: VecDeque<ReadRange>,
    digesting: usize,
    digest: Digest,
}

impl TableState {
    fn loaded(&self) -> bool {
        self.runs.is_empty() && self.loading == 0
    }
    fn built(&self) -> bool {
        self.loaded() && self.builds.is_empty() && self.building == 0
    }
    fn digested(&self) -> bool {
        self.planned && self.ranges.is_empty() && self.digesting == 0
    }
}

struct State {
    tables: Vec<TableState>,
    /// The tail: not started, running, done.
    tail: (bool, bool),
    orphans: Vec<String>,
    foreign_keys: Vec<(String, Option<Validation>)>,
    rest: Vec<String>,
    validations: VecDeque<Validation>,
    validating: usize,
    error: Option<BackupError>,
}

impl State {
    fn all_built(&self) -> bool {
        self.tables.iter().all(TableState::built)
    }

    fn finished(&self) -> bool {
        self.error.is_some()
            || (self.tables.iter().all(|t| t.built() && t.digested())
                && self.tail.1
                && self.validations.is_empty()
                && self.validating == 0)
    }

    /// The next job by priority: builds and plans (they unblock others), the tail, a table
    /// nobody is loading (largest first), validations (long and indivisible), digest ranges,
    /// and last a table another worker is already loading.
    fn next(&mut self) -> Option<Job> {
        let all_loaded = self.tables.iter().all(TableState::loaded);
        for (i, t) in self.tables.iter_mut().enumerate() {
            // Index builds on one table run side by side (SHARE locks); an ALTER TABLE takes
            // an exclusive lock and runs alone. A partitioned table's builds recurse into its
            // partitions: they wait for every load (a key added meanwhile would lock the parent
            // and then wait for a partition whose load waits for the parent: a deadlock).
            let ready = t.loaded()
                && (all_loaded || !t.partitioned)
                && t.builds.front().is_some_and(|next| {
                    t.building == 0 || (!t.exclusive && !next.starts_with("ALTER TABLE"))
                });
            if ready {
                let stmt = t.builds.pop_front().expect("a build is waiting");
                t.exclusive = stmt.starts_with("ALTER TABLE");
                t.building += 1;
                return Some(Job::Build { table: i, stmt });
            }
        }
        for (i, t) in self.tables.iter_mut().enumerate() {
            // Page ranges need no index: a table is read back as soon as it is loaded.
            let ready = if t.by_pages {
                t.loaded()
            } else {
                t.built() && (all_loaded || !t.partitioned)
            };
            if ready && !t.planned && t.digesting == 0 {
                t.digesting += 1;
                return Some(Job::Plan { table: i });
            }
        }
        if !self.tail.0 && self.all_built() {
            self.tail.0 = true;
            return Some(Job::Tail);
        }
        let idle_table = self
            .tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.loading == 0 && !t.runs.is_empty())
            .max_by_key(|(_, t)| t.bytes_left)
            .map(|(i, _)| i);
        if let Some(i) = idle_table {
            return Some(self.take_run(i));
        }
        if let Some(v) = self.validations.pop_front() {
            self.validating += 1;
            return Some(Job::Validate(v));
        }
        for (i, t) in self.tables.iter_mut().enumerate() {
            if let Some(range) = t.ranges.pop_front() {
                t.digesting += 1;
                return Some(Job::Digest { table: i, range });
            }
        }
        let busy_table = self
            .tables
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.runs.is_empty())
            .max_by_key(|(_, t)| t.bytes_left)
            .map(|(i, _)| i);
        busy_table.map(|i| self.take_run(i))
    }

    fn take_run(&mut self, table: usize) -> Job {
        let t = &mut self.tables[table];
        let run = t.runs.pop_front().expect("the table has a run left");
        t.loading += 1;
        Job::Load { table, run }
    }

    fn fail(&mut self, e: BackupError) {
        // A cancellation is the echo of the first real error: keep the cause.
        if self
            .error
            .as_ref()
            .is_none_or(|first| first.is_cancelled() && !e.is_cancelled())
        {
            self.error = Some(e);
        }
    }
}

struct Shared {
    state: Mutex<State>,
    changed: tokio::sync::Notify,
    repo: Arc<Repository>,
    entries: Vec<TableEntry>,
    /// The target's tables with the source's column order and logical types.
    tables: Vec<Table>,
    target: Target,
    maintenance_work_mem_mb: u64,
    /// Each table is loaded whole, frozen (see `Database::write_stream_frozen`).
    frozen: bool,
    /// A load into existing tables: no trigger fires, foreign key checks included.
    data_only: bool,
    cancel: CancellationToken,
    started: std::time::Instant,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("the pipeline state is never poisoned")
    }
}

/// Runs the pipeline; returns each table's digest as read back from the target.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    repo: Arc<Repository>,
    target: &Target,
    jobs: usize,
    maintenance_work_mem_mb: u64,
    pages: bool,
    frozen: bool,
    data_only: bool,
    entries: Vec<TableEntry>,
    tables: Vec<Table>,
    post: PostData,
    cancel: CancellationToken,
) -> Result<Vec<Digest>, BackupError> {
    let table_states = entries
        .iter()
        .zip(&post.builds)
        .zip(&tables)
        .map(|((e, builds), t)| TableState {
            by_pages: pages && t.kind == TableKind::Table,
            // A partitioned table's rows are its partitions': they are loaded through those,
            // and the parent is only read back, once every partition is in.
            runs: match t.kind {
                TableKind::Partitioned => VecDeque::new(),
                _ if frozen => std::iter::once(0..e.chunks.len()).collect(),
                _ => (0..e.chunks.len())
                    .step_by(RUN)
                    .map(|first| first..(first + RUN).min(e.chunks.len()))
                    .collect(),
            },
            partitioned: t.kind == TableKind::Partitioned,
            bytes_left: e.bytes,
            builds: builds.iter().cloned().collect(),
            ..TableState::default()
        })
        .collect();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            tables: table_states,
            tail: (false, false),
            orphans: post.orphan_builds,
            foreign_keys: post.foreign_keys,
            rest: post.rest,
            validations: VecDeque::new(),
            validating: 0,
            error: None,
        }),
        changed: tokio::sync::Notify::new(),
        repo,
        entries,
        tables,
        target: target.clone(),
        maintenance_work_mem_mb,
        frozen,
        data_only,
        cancel,
        started: std::time::Instant::now(),
    });
    let mut workers = Vec::new();
    for _ in 0..jobs.max(1) {
        let shared = shared.clone();
        workers.push(tokio::spawn(async move {
            if let Err(e) = worker(&shared).await {
                shared.cancel.cancel();
                shared.lock().fail(e);
                shared.changed.notify_waiters();
            }
        }));
    }
    for w in workers {
        if let Err(e) = w.await {
            shared.lock().fail(BackupError::Internal(format!(
                "a restore worker failed: {e}"
            )));
        }
    }
    let mut state = shared.lock();
    if let Some(e) = state.error.take() {
        return Err(e);
    }
    Ok(state.tables.iter().map(|t| t.digest).collect())
}

async fn worker(shared: &Shared) -> Result<(), BackupError> {
    let mut db = Database::connect(&shared.target, OpenMode::ReadWrite).await?;
    // Keys are built after the load and checked by the proof, not row by row; foreign keys
    // point at rows that may not be loaded yet. A PostgreSQL index build or foreign key
    // check sorts and hashes in memory (the benchmark's 5 M-row key took 1.2 CPU-s serial
    // against 2.4 in parallel workers that spill their sorts).
    db.begin_bulk_load(upkeep_db::BulkLoad {
        maintenance_work_mem_mb: Some(shared.maintenance_work_mem_mb),
        disable_triggers: shared.data_only,
        ..upkeep_db::BulkLoad::default()
    })
    .await?;
    loop {
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let job = {
            let mut state = shared.lock();
            if state.finished() {
                break;
            }
            state.next()
        };
        let Some(job) = job else {
            changed.await;
            continue;
        };
        if shared.cancel.is_cancelled() {
            return Err(BackupError::Cancelled);
        }
        run_job(shared, &mut db, job).await?;
        shared.changed.notify_waiters();
    }
    db.close().await;
    Ok(())
}

async fn run_job(shared: &Shared, db: &mut Database, job: Job) -> Result<(), BackupError> {
    let started = std::time::Instant::now();
    let what = tracing::enabled!(tracing::Level::DEBUG).then(|| job.describe(&shared.tables));
    run_job_inner(shared, db, job).await?;
    if let Some(what) = what {
        tracing::debug!(took = ?started.elapsed(), at = ?shared.started.elapsed(), "{what}");
    }
    Ok(())
}

impl Job {
    fn describe(&self, tables: &[Table]) -> String {
        match self {
            Self::Load { table, run } => {
                format!("loaded {} chunks {run:?}", tables[*table].name)
            }
            Self::Build { stmt, .. } => stmt.chars().take(80).collect(),
            Self::Validate(v) => format!("validated {} {}", v.table, v.name),
            Self::Plan { table } => format!("planned the read-back of {}", tables[*table].name),
            Self::Digest { table, range } => {
                format!("read back {} {range:?}", tables[*table].name)
            }
            Self::Tail => "foreign keys and the rest of the post-data".to_owned(),
        }
    }
}

async fn run_job_inner(shared: &Shared, db: &mut Database, job: Job) -> Result<(), BackupError> {
    match job {
        Job::Load { table, run } => {
            let entry = &shared.entries[table];
            let bytes: u64 = entry.chunks[run.clone()].iter().map(|c| c.bytes).sum();
            load_run(
                db,
                &shared.repo,
                entry,
                &shared.tables[table],
                run,
                shared.frozen,
            )
            .await?;
            let mut state = shared.lock();
            let s = &mut state.tables[table];
            s.loading -= 1;
            s.bytes_left = s.bytes_left.saturating_sub(bytes);
        }
        Job::Build { table, stmt } => {
            db.execute_statement(&stmt).await?;
            let mut state = shared.lock();
            let s = &mut state.tables[table];
            s.building -= 1;
            if s.building == 0 {
                s.exclusive = false;
            }
        }
        Job::Plan { table } => {
            let t = &shared.tables[table];
            let pages = if shared.lock().tables[table].by_pages {
                db.page_count(t).await?
            } else {
                None
            };
            let ranges: Vec<ReadRange> = match pages {
                Some(n) => {
                    let count = n.div_ceil(PAGES_PER_RANGE).max(1);
                    (0..count)
                        .map(|k| {
                            let p = k * PAGES_PER_RANGE;
                            ReadRange::Pages(p..p + PAGES_PER_RANGE, k + 1 == count)
                        })
                        .collect()
                }
                None if shared.lock().tables[table].built() => {
                    let options = PlanOptions {
                        min_chunks: 2,
                        ..PlanOptions::default()
                    };
                    db.plan(t, &options)
                        .await?
                        .into_iter()
                        .map(ReadRange::Keys)
                        .collect()
                }
                // No index yet: one scan of the whole table.
                None => vec![ReadRange::Keys(KeyRange::ALL)],
            };
            let mut state = shared.lock();
            let s = &mut state.tables[table];
            s.ranges.extend(ranges);
            s.planned = true;
            s.digesting -= 1;
        }
        Job::Digest { table, range } => {
            let t = &shared.tables[table];
            let d = match range {
                ReadRange::Keys(r) => db.digest_range(t, &r, &shared.cancel).await?,
                ReadRange::Pages(p, last) => db.digest_pages(t, p, last, &shared.cancel).await?,
            };
            let mut state = shared.lock();
            let s = &mut state.tables[table];
            s.digest.merge(&d);
            s.digesting -= 1;
        }
        Job::Tail => {
            let (orphans, fks) = {
                let mut state = shared.lock();
                (
                    std::mem::take(&mut state.orphans),
                    std::mem::take(&mut state.foreign_keys),
                )
            };
            for stmt in orphans {
                db.execute_statement(&stmt).await?;
            }
            // Validations start once every key is added: an ADD would wait for a validation
            // on its table.
            let mut validations = Vec::new();
            for (add, validate) in fks {
                db.execute_statement(&add).await?;
                validations.extend(validate);
            }
            shared.lock().validations.extend(validations);
            shared.changed.notify_waiters();
            let rest = std::mem::take(&mut shared.lock().rest);
            for stmt in rest {
                db.execute_statement(&stmt).await?;
            }
            shared.lock().tail.1 = true;
        }
        Job::Validate(v) => {
            db.execute_statement(&pg_post::validate_foreign_key(&v.table, &v.name))
                .await?;
            shared.lock().validating -= 1;
        }
    }
    Ok(())
}

/// Each table's name as PostgreSQL's `quote_ident` spells it (`public."Order"`), which is how
/// the native DDL names tables: one query for all of them.
pub(crate) async fn spelled_names(
    db: &mut Database,
    tables: &[Table],
) -> Result<Vec<String>, BackupError> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    // The model leaves `public` out of table names.
    let rows: Vec<String> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "({i}, {}, {})",
                quote::literal(
                    Engine::Postgres,
                    t.name.schema.as_deref().unwrap_or("public")
                ),
                quote::literal(Engine::Postgres, &t.name.name)
            )
        })
        .collect();
    let sql = format!(
        "SELECT json_agg(quote_ident(s) || '.' || quote_ident(t) ORDER BY i)::text \
         FROM (VALUES {}) AS v(i, s, t)",
        rows.join(", ")
    );
    let json = db.query_scalar(&sql).await?.unwrap_or_default();
    serde_json::from_str(&json).map_err(|e| {
        upkeep_db::DbError::Query {
            target: db.target().display().to_owned(),
            context: "spelling table names".to_owned(),
            message: e.to_string(),
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_test_support::TestDb;

    async fn show(conn: &mut Database, name: &str) -> String {
        conn.query_scalar(&format!("SHOW {name}"))
            .await
            .unwrap()
            .unwrap()
    }

    /// A restore session builds serially, without JIT, with more sort memory, never less.
    #[tokio::test]
    async fn pg_restore_sessions_build_serially_with_their_memory() {
        let db = TestDb::new(Engine::Postgres).await;
        let mut conn = db.connect().await;
        let load = |mib| upkeep_db::BulkLoad {
            maintenance_work_mem_mb: Some(mib),
            ..upkeep_db::BulkLoad::default()
        };
        conn.begin_bulk_load(load(2048)).await.unwrap();
        assert_eq!(show(&mut conn, "maintenance_work_mem").await, "2GB");
        assert_eq!(
            show(&mut conn, "max_parallel_maintenance_workers").await,
            "0"
        );
        assert_eq!(
            show(&mut conn, "max_parallel_workers_per_gather").await,
            "0"
        );
        assert_eq!(show(&mut conn, "jit").await, "off");
        conn.begin_bulk_load(load(64)).await.unwrap();
        assert_eq!(show(&mut conn, "maintenance_work_mem").await, "2GB");
        conn.close().await;
    }
}
