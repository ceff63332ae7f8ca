//! The engine-neutral handles: [`Database`] (one connection) and [`Snapshot`] (a coordinator
//! and the worker sessions that share one consistent view).
//!
//! Engines are an enum rather than a trait object: async functions in traits are not
//! dyn-compatible, and three engines fit one `match`.

use std::collections::HashMap;

use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use upkeep_core::{Batch, Engine, KeyRange, Schema, Table, TableName};

use crate::plan::{self, PlanOptions};
use crate::{mysql, pg, sqlite, DbError, OpenMode, Target};

pub(crate) enum Session {
    Pg(PgConnection),
    My(MySqlConnection),
    Sqlite(rusqlite::Connection),
}

impl Session {
    pub(crate) async fn open(target: &Target, mode: OpenMode) -> Result<Self, DbError> {
        Ok(match target.engine() {
            Engine::Postgres => Self::Pg(pg::connect(target).await?),
            Engine::Mysql => Self::My(mysql::connect(target).await?),
            Engine::Sqlite => Self::Sqlite(sqlite::open(target, mode)?),
        })
    }

    pub(crate) async fn close(self) {
        match self {
            Self::Pg(c) => pg::close(c).await,
            Self::My(c) => mysql::close(c).await,
            Self::Sqlite(c) => drop(c),
        }
    }

    async fn introspect(&mut self, target: &Target) -> Result<Schema, DbError> {
        let mut schema = match self {
            Self::Pg(c) => pg::introspect(c, target).await,
            Self::My(c) => mysql::introspect(c, target).await,
            Self::Sqlite(c) => sqlite::introspect(c, target),
        }?;
        // Catalog order follows each server's collation: sort by bytes, the same everywhere.
        schema.tables.sort_by(|a, b| a.name.cmp(&b.name));
        schema.views.sort_by(|a, b| a.name.cmp(&b.name));
        schema.sequences.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(schema)
    }

    async fn schema_objects(
        &mut self,
        target: &Target,
    ) -> Result<Vec<upkeep_core::SchemaObject>, DbError> {
        match self {
            Self::Pg(c) => pg::schema_objects(c, target).await,
            Self::My(c) => mysql::schema_objects(c, target).await,
            Self::Sqlite(c) => sqlite::schema_objects(c, target),
        }
    }

    async fn server_version(&mut self, target: &Target) -> Result<String, DbError> {
        match self {
            Self::Pg(c) => pg::server_version(c, target).await,
            Self::My(c) => mysql::server_version(c, target).await,
            Self::Sqlite(_) => Ok(sqlite::server_version()),
        }
    }

    /// Runs a query and returns its rows with every value as text (or NULL); `context` names
    /// what the query is for in an error.
    pub(crate) async fn query_text(
        &mut self,
        target: &Target,
        sql: &str,
        context: &str,
    ) -> Result<Vec<Vec<Option<String>>>, DbError> {
        use sqlx::{Executor, Row};
        match self {
            Self::Pg(c) => {
                let rows = c.fetch_all(sql).await.map_err(pg::err(target, context))?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (0..r.columns().len())
                            .map(|i| r.try_get::<Option<String>, _>(i).ok().flatten())
                            .collect()
                    })
                    .collect())
            }
            Self::My(c) => {
                let rows = c
                    .fetch_all(sql)
                    .await
                    .map_err(mysql::err(target, context))?;
                Ok(rows
                    .iter()
                    .map(|r| (0..r.columns().len()).map(|i| mysql::text(r, i)).collect())
                    .collect())
            }
            Self::Sqlite(c) => {
                let path = target.sqlite_path().expect("a SQLite target has a path");
                let e = |err| sqlite::map_err(err, path, context);
                let mut stmt = c.prepare(sql).map_err(e)?;
                let n = stmt.column_count();
                let rows = stmt
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| r.get_ref(i).map(sqlite::value_text))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(e)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?;
                Ok(rows)
            }
        }
    }
}

/// How a session that loads rows in bulk is set up (see [`Database::begin_bulk_load`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct BulkLoad {
    /// PostgreSQL: memory for index builds and foreign key checks, in MiB (raised, never
    /// lowered).
    pub maintenance_work_mem_mb: Option<u64>,
    /// Fire no trigger, foreign key checks included: a load into existing tables, whose
    /// rows arrive in no particular order (`--data-only`).
    pub disable_triggers: bool,
    /// The data can be made again (generated): SQLite writes through a write-ahead log
    /// without syncing.
    pub regenerable: bool,
}

/// One connection to a database.
pub struct Database {
    target: Target,
    session: Session,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("target", &self.target)
            .finish()
    }
}

impl Database {
    pub async fn connect(target: &Target, mode: OpenMode) -> Result<Self, DbError> {
        Ok(Self {
            target: target.clone(),
            session: Session::open(target, mode).await?,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn engine(&self) -> Engine {
        self.target.engine()
    }

    pub async fn server_version(&mut self) -> Result<String, DbError> {
        self.session.server_version(&self.target).await
    }

    pub async fn introspect(&mut self) -> Result<Schema, DbError> {
        self.session.introspect(&self.target).await
    }

    /// Every schema object of the database, in an order that creates them (see
    /// [`upkeep_core::SchemaObject`]).
    pub async fn schema_objects(&mut self) -> Result<Vec<upkeep_core::SchemaObject>, DbError> {
        self.session.schema_objects(&self.target).await
    }

    /// Runs SQL statements (a schema script, a fixture). MySQL scripts are split at `;` line
    /// ends; PostgreSQL and SQLite take the script whole.
    pub async fn execute_script(&mut self, sql: &str) -> Result<(), DbError> {
        match &mut self.session {
            Session::Pg(c) => pg::execute_script(c, &self.target, sql).await,
            Session::My(c) => mysql::execute_script(c, &self.target, sql).await,
            Session::Sqlite(c) => sqlite::execute_script(c, &self.target, sql),
        }
    }

    /// Runs one statement as it is (a function body may hold semicolons).
    pub async fn execute_statement(&mut self, sql: &str) -> Result<(), DbError> {
        use sqlx::Executor;
        match &mut self.session {
            Session::Pg(c) => c
                .execute(sql)
                .await
                .map(|_| ())
                .map_err(pg::err(&self.target, "running SQL")),
            Session::My(c) => c
                .execute(sql)
                .await
                .map(|_| ())
                .map_err(mysql::err(&self.target, "running SQL")),
            Session::Sqlite(c) => sqlite::execute_script(c, &self.target, sql),
        }
    }

    /// The first column of the first row of a query, as text (`None` for no row or NULL).
    pub async fn query_scalar(&mut self, sql: &str) -> Result<Option<String>, DbError> {
        let rows = self
            .session
            .query_text(&self.target, sql, "running a query")
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// Whether a table holds any row.
    pub async fn has_rows(&mut self, table: &upkeep_core::TableName) -> Result<bool, DbError> {
        let sql = format!(
            "SELECT 1 FROM {} LIMIT 1",
            crate::quote::table(self.engine(), table)
        );
        let context = format!("checking whether table {table} holds rows");
        Ok(!self
            .session
            .query_text(&self.target, &sql, &context)
            .await?
            .is_empty())
    }

    /// Appends canonical rows to `table` by the engine's fast path.
    pub async fn write_batch(&mut self, table: &Table, batch: &Batch) -> Result<u64, DbError> {
        match &mut self.session {
            Session::Pg(c) => pg::write_batch(c, &self.target, table, batch).await,
            Session::My(c) => mysql::write_batch(c, &self.target, table, batch).await,
            Session::Sqlite(c) => sqlite::write_batch(c, &self.target, table, batch),
        }
    }

    /// Loads every batch the channel brings into the empty `table`, which it truncates in
    /// the same transaction: PostgreSQL loads the rows frozen (`COPY … FREEZE`); elsewhere
    /// this is [`Self::write_stream`].
    pub async fn write_stream_frozen(
        &mut self,
        table: &Table,
        batches: &mut tokio::sync::mpsc::Receiver<Batch>,
    ) -> Result<u64, DbError> {
        if let Session::Pg(c) = &mut self.session {
            return pg::write_stream_frozen(c, &self.target, table, batches).await;
        }
        self.write_stream(table, batches).await
    }

    /// Appends every batch the channel brings to `table`: through one COPY on PostgreSQL,
    /// batch by batch elsewhere. Stops when the sender is dropped.
    pub async fn write_stream(
        &mut self,
        table: &Table,
        batches: &mut tokio::sync::mpsc::Receiver<Batch>,
    ) -> Result<u64, DbError> {
        if let Session::Pg(c) = &mut self.session {
            return pg::write_stream(c, &self.target, table, batches).await;
        }
        let mut rows = 0;
        while let Some(batch) = batches.recv().await {
            rows += self.write_batch(table, &batch).await?;
        }
        Ok(rows)
    }

    /// Sets this session up to load rows in bulk and build keys after: the proof checks what
    /// was loaded, not each row as it arrives. PostgreSQL builds indexes serially in memory
    /// (`maintenance_work_mem` raised to `load.maintenance_work_mem_mb`, no parallel workers
    /// or JIT: the restore already keeps its sessions busy) and, with `disable_triggers`,
    /// fires no trigger (`session_replication_role = replica`, which needs a superuser, as
    /// pg_restore's `--disable-triggers`); MySQL/MariaDB checks no foreign or unique key row
    /// by row; SQLite enforces no foreign key.
    pub async fn begin_bulk_load(&mut self, load: BulkLoad) -> Result<(), DbError> {
        match &mut self.session {
            Session::Pg(c) => pg::begin_bulk_load(c, &self.target, load).await,
            Session::My(c) => {
                mysql::execute_script(
                    c,
                    &self.target,
                    "SET FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0",
                )
                .await
            }
            Session::Sqlite(c) => {
                let mut sql = "PRAGMA foreign_keys = OFF".to_owned();
                if load.regenerable {
                    sql.push_str("; PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF");
                }
                sqlite::execute_script(c, &self.target, &sql)
            }
        }
    }

    /// The roles of a PostgreSQL server (none elsewhere).
    pub async fn roles(&mut self) -> Result<std::collections::HashSet<String>, DbError> {
        if self.engine() != Engine::Postgres {
            return Ok(std::collections::HashSet::new());
        }
        let rows = self
            .session
            .query_text(
                &self.target,
                "SELECT rolname::text FROM pg_roles",
                "reading roles",
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect())
    }

    /// Splits `table` into key ranges on its split key, on this session.
    pub async fn plan(
        &mut self,
        table: &Table,
        options: &crate::PlanOptions,
    ) -> Result<Vec<upkeep_core::KeyRange>, DbError> {
        crate::plan::plan_table(&mut self.session, &self.target, table, options).await
    }

    /// Digests the rows of `table` within `range`, read on this session outside any snapshot:
    /// for data that nothing else writes, such as a restore's read-back. The rows are read
    /// while the previous batch is hashed on a blocking thread. PostgreSQL and MySQL only
    /// (SQLite reads block: use [`crate::digest_tables`]).
    pub async fn digest_range(
        &mut self,
        table: &Table,
        range: &upkeep_core::KeyRange,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<upkeep_core::Digest, DbError> {
        let tail = crate::scan::range_tail(&self.target, table, range);
        self.digest_where(table, tail, cancel).await
    }

    /// Whether the server reads page ranges with TID range scans (PostgreSQL 14 and later),
    /// which [`Database::digest_pages`] needs.
    pub async fn reads_page_ranges(&mut self) -> Result<bool, DbError> {
        if self.engine() != upkeep_core::Engine::Postgres {
            return Ok(false);
        }
        let version = self.query_scalar("SHOW server_version_num").await?;
        Ok(version.and_then(|v| v.parse::<u32>().ok()).unwrap_or(0) >= 140_000)
    }

    /// The number of pages of a PostgreSQL table; `None` for other engines and for
    /// partitioned tables, which store nothing themselves.
    pub async fn page_count(&mut self, table: &Table) -> Result<Option<u64>, DbError> {
        if self.engine() != upkeep_core::Engine::Postgres
            || table.kind != upkeep_core::TableKind::Table
        {
            return Ok(None);
        }
        let name = crate::quote::table(upkeep_core::Engine::Postgres, &table.name);
        let sql = format!(
            "SELECT (pg_relation_size({}::regclass) / current_setting('block_size')::int8)::text",
            crate::quote::literal(upkeep_core::Engine::Postgres, &name)
        );
        Ok(self.query_scalar(&sql).await?.and_then(|v| v.parse().ok()))
    }

    /// Digests the rows of a PostgreSQL table stored in pages `pages` (the last range open
    /// ended), read outside any snapshot with a TID range scan: no index is needed, so a
    /// table can be read back in parallel while its keys are still being built.
    pub async fn digest_pages(
        &mut self,
        table: &Table,
        pages: std::ops::Range<u64>,
        last: bool,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<upkeep_core::Digest, DbError> {
        let mut tail = format!(" WHERE ctid >= '({},0)'::tid", pages.start);
        if !last {
            tail.push_str(&format!(" AND ctid < '({},0)'::tid", pages.end));
        }
        self.digest_where(table, tail, cancel).await
    }

    async fn digest_where(
        &mut self,
        table: &Table,
        tail: String,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<upkeep_core::Digest, DbError> {
        use crate::scan::{ChunkOut, Msg};
        let task = std::sync::Arc::new(crate::ScanTask::new(0, 0, upkeep_core::KeyRange::ALL));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(4);
        let hasher = tokio::task::spawn_blocking(move || {
            let mut digest = upkeep_core::Digest::default();
            while let Some(msg) = rx.blocking_recv() {
                if let Msg::Batch(_, batch, permit) = msg {
                    batch.rows().for_each(|row| digest.add_row(row));
                    drop(permit);
                }
            }
            digest
        });
        let mut out = ChunkOut::new(
            tx,
            task,
            crate::ScanOptions::default(),
            cancel.clone(),
            crate::scan::in_flight_budget(),
        );
        let read = match &mut self.session {
            Session::Pg(c) => crate::pg::read_chunk(c, &self.target, table, &tail, &mut out).await,
            Session::My(c) => {
                crate::mysql::read_chunk(c, &self.target, table, &tail, &mut out).await
            }
            Session::Sqlite(_) => Err(DbError::query(
                self.target.display(),
                format!("digesting table {}", table.name),
                "a SQLite session cannot digest a range on its own; use digest_tables",
            )),
        };
        let flushed = match read {
            Ok(()) => out.flush().await,
            Err(e) => Err(e),
        };
        drop(out);
        let digest = hasher
            .await
            .map_err(|e| DbError::query(self.target.display(), "digesting", e.to_string()))?;
        flushed.map(|()| digest)
    }

    pub async fn close(self) {
        self.session.close().await;
    }
}

/// Tables planned into scan tasks ([`Snapshot::plan_tasks`]).
#[derive(Debug, Default)]
pub struct Planned {
    pub tasks: Vec<crate::ScanTask>,
    /// Per table, its key ranges (one per task of that table, in chunk order).
    pub ranges: Vec<Vec<upkeep_core::KeyRange>>,
    /// Tables without a key to split on.
    pub warnings: Vec<String>,
}

/// A consistent read of a database: a coordinator that holds the snapshot and planned the
/// chunks, and worker sessions that all see the same data.
pub struct Snapshot {
    target: Target,
    coordinator: Option<Session>,
    sessions: Vec<Session>,
    schema: Schema,
    server_version: String,
    consistency: String,
    warnings: Vec<String>,
    /// See [`Snapshot::change_identity`].
    change_identity: Option<String>,
    /// See [`Snapshot::change_position`].
    change_position: Option<u64>,
    /// See [`Snapshot::table_fingerprint`].
    table_fingerprints: HashMap<String, String>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("target", &self.target)
            .field("consistency", &self.consistency)
            .finish()
    }
}

impl Snapshot {
    /// Opens a snapshot with `workers` sessions (SQLite: one, in one read transaction).
    pub async fn open(target: &Target, workers: usize) -> Result<Self, DbError> {
        Self::open_with(target, workers, false).await
    }

    /// Opens a snapshot that also reads what change fingerprints need (see
    /// [`Self::change_identity`] and [`Self::table_fingerprint`]): for backups, which compare
    /// them with their parent's.
    pub async fn open_fingerprinted(target: &Target, workers: usize) -> Result<Self, DbError> {
        Self::open_with(target, workers, true).await
    }

    async fn open_with(
        target: &Target,
        workers: usize,
        fingerprints: bool,
    ) -> Result<Self, DbError> {
        let workers = workers.max(1);
        match target.engine() {
            Engine::Postgres => {
                let mut coord = pg::connect(target).await?;
                let id = pg::begin_exported(&mut coord, target).await?;
                let mut coordinator = Session::Pg(coord);
                let schema = coordinator.introspect(target).await?;
                let server_version = coordinator.server_version(target).await?;
                let (change_identity, change_position) = match &mut coordinator {
                    Session::Pg(c) if fingerprints => pg::change_identity(c, target)
                        .await?
                        .map_or((None, None), |(i, p)| (Some(i), Some(p))),
                    _ => (None, None),
                };
                let mut sessions = Vec::with_capacity(workers);
                for _ in 0..workers {
                    let mut c = pg::connect(target).await?;
                    pg::join_snapshot(&mut c, target, &id).await?;
                    sessions.push(Session::Pg(c));
                }
                Ok(Self {
                    target: target.clone(),
                    coordinator: Some(coordinator),
                    sessions,
                    schema,
                    server_version,
                    consistency: format!("exported snapshot {id}"),
                    warnings: Vec::new(),
                    change_identity,
                    change_position,
                    table_fingerprints: HashMap::new(),
                })
            }
            Engine::Mysql => {
                let mut coord = mysql::connect(target).await?;
                let mut workers_conns = Vec::with_capacity(workers);
                for _ in 0..workers {
                    workers_conns.push(mysql::connect(target).await?);
                }
                let mut warnings = Vec::new();
                let locked = if workers > 1 {
                    mysql::lock_for_snapshot(&mut coord, target).await?
                } else {
                    false
                };
                if workers > 1 && !locked {
                    warnings.push(format!(
                        "the user lacks the RELOAD privilege on {target}: the {workers} workers start their \
                         snapshots one after the other, not at one instant; use --jobs 1 for a strictly \
                         consistent read"
                    ));
                }
                // Before any snapshot starts (see `mysql::change_threshold`).
                let threshold = if fingerprints {
                    mysql::change_threshold(&mut coord).await
                } else {
                    None
                };
                let mut result = Ok(());
                for c in &mut workers_conns {
                    result = mysql::begin_snapshot(c, target).await;
                    if result.is_err() {
                        break;
                    }
                }
                let position = mysql::binlog_position(&mut coord).await;
                let mut coordinator = Session::My(coord);
                let schema = coordinator.introspect(target).await;
                if locked {
                    if let Session::My(c) = &mut coordinator {
                        mysql::unlock(c, target).await?;
                    }
                }
                result?;
                let schema = schema?;
                let server_version = coordinator.server_version(target).await?;
                let mut change_identity = None;
                let mut table_fingerprints = HashMap::new();
                if let (Some((identity, threshold)), Session::My(c)) = (threshold, &mut coordinator)
                {
                    if let Some(fps) = mysql::table_fingerprints(c, threshold).await {
                        table_fingerprints = fps
                            .into_iter()
                            .map(|(t, fp)| (t, format!("{identity}/{fp}")))
                            .collect();
                        change_identity = Some(identity);
                    }
                }
                Ok(Self {
                    target: target.clone(),
                    coordinator: Some(coordinator),
                    sessions: workers_conns.into_iter().map(Session::My).collect(),
                    schema,
                    server_version,
                    consistency: match position {
                        Some(p) => format!("consistent snapshot at binlog {p}"),
                        None => "consistent snapshot transactions".to_owned(),
                    },
                    warnings,
                    change_identity,
                    change_position: None,
                    table_fingerprints,
                })
            }
            Engine::Sqlite => {
                let conn = sqlite::open(target, OpenMode::ReadOnly)?;
                let path = target.sqlite_path().expect("a SQLite target has a path");
                conn.execute_batch("BEGIN")
                    .map_err(|e| sqlite::map_err(e, path, "starting the read transaction"))?;
                let mut session = Session::Sqlite(conn);
                // The first read of the transaction fixes its snapshot.
                let schema = session.introspect(target).await?;
                Ok(Self {
                    target: target.clone(),
                    coordinator: None,
                    sessions: vec![session],
                    schema,
                    server_version: sqlite::server_version(),
                    consistency: "one read transaction".to_owned(),
                    warnings: Vec::new(),
                    change_identity: None,
                    change_position: None,
                    table_fingerprints: HashMap::new(),
                })
            }
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// What makes this read consistent (the exported snapshot id, the binlog position…).
    pub fn consistency(&self) -> &str {
        &self.consistency
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What ties change fingerprints to this source (PostgreSQL: cluster, timeline, database,
    /// transaction-id epoch and the server's start and last crash recovery; MariaDB: server
    /// id, host, port and data directory): a fingerprint taken under another identity is
    /// never compared. `None` where the engine has no fingerprints (MySQL, SQLite) or the user
    /// may not read what they are made of.
    pub fn change_identity(&self) -> Option<&str> {
        self.change_identity.as_deref()
    }

    /// PostgreSQL: the WAL position of the snapshot, in bytes. Within one identity it only
    /// grows; a snapshot whose position is behind its parent's does not trust the parent.
    pub fn change_position(&self) -> Option<u64> {
        self.change_position
    }

    /// MariaDB: the change fingerprint of a whole table, the same for each of its key ranges
    /// (see `mysql::table_fingerprints`); `None` for a table that must be read. PostgreSQL
    /// fingerprints each key range instead, from its rows.
    pub fn table_fingerprint(&self, table: &TableName) -> Option<&str> {
        if table.schema.is_some() {
            return None;
        }
        self.table_fingerprints.get(&table.name).map(String::as_str)
    }

    /// How many sessions read in parallel.
    pub fn workers(&self) -> usize {
        self.sessions.len()
    }

    /// Splits a table into key ranges on its split key (one range when it has none or is
    /// small).
    pub async fn plan(
        &mut self,
        table: &Table,
        options: &PlanOptions,
    ) -> Result<Vec<KeyRange>, DbError> {
        let session = match self.coordinator.as_mut() {
            Some(c) => c,
            None => self.sessions.first_mut().expect("a snapshot has a session"),
        };
        plan::plan_table(session, &self.target, table, options).await
    }

    /// Plans every table of `tables` into scan tasks (indexes into `tables`), split at least
    /// as many ways as the snapshot has workers, and says which tables are read as one
    /// stream for want of a key. Also returns each table's ranges.
    pub async fn plan_tasks(
        &mut self,
        tables: &[Table],
        options: PlanOptions,
    ) -> Result<Planned, DbError> {
        self.plan_tasks_given(tables, options, &vec![None; tables.len()])
            .await
    }

    /// [`Self::plan_tasks`], where a table with `given` ranges (which must partition its key
    /// space, as an earlier plan's do) keeps them instead of being planned.
    pub async fn plan_tasks_given(
        &mut self,
        tables: &[Table],
        options: PlanOptions,
        given: &[Option<Vec<KeyRange>>],
    ) -> Result<Planned, DbError> {
        let options = PlanOptions {
            min_chunks: self.workers(),
            ..options
        };
        let mut planned = Planned::default();
        for (ti, table) in tables.iter().enumerate() {
            if table.split_key().is_none() {
                planned.warnings.push(format!(
                    "table {} has no primary or unique not-null key: read as one stream",
                    table.name
                ));
            }
            let ranges = match given.get(ti) {
                Some(Some(ranges)) => ranges.clone(),
                _ => self.plan(table, &options).await?,
            };
            planned.tasks.extend(
                ranges
                    .iter()
                    .enumerate()
                    .map(|(ci, range)| crate::ScanTask::new(ti, ci, range.clone())),
            );
            planned.ranges.push(ranges);
        }
        Ok(planned)
    }

    /// Every schema object of the database, read in the snapshot (see
    /// [`Database::schema_objects`]).
    pub async fn schema_objects(&mut self) -> Result<Vec<upkeep_core::SchemaObject>, DbError> {
        let target = self.target.clone();
        let session = match self.coordinator.as_mut() {
            Some(c) => c,
            None => self.sessions.first_mut().expect("a snapshot has a session"),
        };
        session.schema_objects(&target).await
    }

    pub(crate) fn take_sessions(&mut self) -> Vec<Session> {
        std::mem::take(&mut self.sessions)
    }

    /// Ends the snapshot.
    pub async fn close(mut self) {
        if let Some(c) = self.coordinator.take() {
            c.close().await;
        }
        for s in self.sessions.drain(..) {
            s.close().await;
        }
    }
}
