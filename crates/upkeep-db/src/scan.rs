//! The chunked, parallel, consistent reader: one pipeline that every tool uses.
//!
//! Each worker owns one session of the shared snapshot and is paired with one sink thread by
//! a bounded channel. A worker takes the next chunk from a shared queue, encodes its rows into
//! batches and sends them; its sink consumes them in order. A full channel makes the worker
//! wait, so memory is bounded by workers × (channel depth + 2) × batch size, whatever the
//! table size.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use upkeep_core::{Batch, BatchBuilder, KeyRange, Progress, ProgressEvent, Table};

use crate::database::Session;
use crate::{plan, DbError, Snapshot};

/// Batches in flight between a worker and its sink.
const CHANNEL_DEPTH: usize = 4;

/// Bytes of batches in flight between all readers and their sinks, in KiB. Batches are
/// bounded by bytes, but a single value larger than the bound makes a batch of one row: a run
/// of 50 MB values would otherwise queue `CHANNEL_DEPTH` of them per worker. A batch larger
/// than the whole budget waits until nothing else is in flight.
const IN_FLIGHT_KIB: u32 = 64 << 10;

/// The byte budget shared by a scan's readers (see [`IN_FLIGHT_KIB`]).
pub(crate) fn in_flight_budget() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_KIB as usize))
}

/// A batch's share of the budget: its size in KiB, at most the whole budget.
fn budget_share(batch: &Batch) -> u32 {
    u32::try_from(batch.byte_len().div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, IN_FLIGHT_KIB)
}

/// One unit of work: a key range of a table.
#[derive(Clone, Debug)]
pub struct ScanTask {
    /// Index into the scanned tables.
    pub table: usize,
    /// Index of the chunk within its table.
    pub chunk: usize,
    pub range: KeyRange,
    /// Skip reading the range when its change fingerprint is this (with
    /// [`ScanOptions::fingerprints`]): the sink is told [`BatchSink::fingerprint`] with
    /// `unchanged` and gets no batch.
    pub unchanged_if: Option<String>,
}

impl ScanTask {
    pub fn new(table: usize, chunk: usize, range: KeyRange) -> Self {
        Self {
            table,
            chunk,
            range,
            unchanged_if: None,
        }
    }
}

/// Consumes the batches of the chunks one worker reads, in order, on its own thread.
pub trait BatchSink: Send + 'static {
    type Error: std::error::Error + Send + Sync + 'static;

    fn batch(&mut self, task: &ScanTask, batch: Batch) -> Result<(), Self::Error>;

    /// Called once a chunk's last batch has been consumed, with its row count and the number
    /// of values read by the spec's `other` rule because they did not fit their column.
    fn chunk_done(&mut self, task: &ScanTask, rows: u64, irregular: u64)
        -> Result<(), Self::Error>;

    /// The chunk's change fingerprint, when the scan computes them
    /// ([`ScanOptions::fingerprints`] on an engine that has them): after its last batch and
    /// before [`Self::chunk_done`], or alone when it equals the task's `unchanged_if`
    /// (`unchanged`), in which case the chunk was not read. Returns how many rows the sink
    /// took from elsewhere for an unchanged chunk (for progress), else 0.
    fn fingerprint(
        &mut self,
        _task: &ScanTask,
        _fingerprint: String,
        _unchanged: bool,
    ) -> Result<u64, Self::Error> {
        Ok(0)
    }
}

/// A scan failed in the database or in a sink.
#[derive(Debug, thiserror::Error)]
pub enum ScanError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Sink(E),
}

#[derive(Clone, Copy, Debug)]
pub struct ScanOptions {
    pub batch_rows: usize,
    pub batch_bytes: usize,
    /// Read each chunk in key order (backups need a stable row order for their chunks to
    /// deduplicate; digests do not care).
    pub ordered: bool,
    /// Compute each chunk's change fingerprint (PostgreSQL: row count and a hash sum of the
    /// rows' `(ctid, xmin)`, tied to the cluster, timeline and database; MariaDB: its table's
    /// id and change stamp) and skip chunks whose fingerprint equals their task's
    /// `unchanged_if`.
    pub fingerprints: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            batch_rows: upkeep_core::DEFAULT_BATCH_ROWS,
            batch_bytes: upkeep_core::DEFAULT_BATCH_BYTES,
            ordered: false,
            fingerprints: false,
        }
    }
}

pub(crate) enum Msg {
    /// A batch, and its share of the in-flight budget, released once the sink is done.
    Batch(Arc<ScanTask>, Batch, tokio::sync::OwnedSemaphorePermit),
    Done(Arc<ScanTask>, u64, u64),
    Fingerprint(Arc<ScanTask>, String, bool),
}

/// Where a reader writes one chunk's rows.
pub(crate) struct ChunkOut {
    tx: mpsc::Sender<Msg>,
    task: Arc<ScanTask>,
    builder: BatchBuilder,
    rows: u64,
    irregular: u64,
    /// PostgreSQL: the rows' (ctid, xmin) hash sum, when the scan fingerprints chunks.
    pub(crate) versions: Option<crate::pg::RowVersionSum>,
    cancel: CancellationToken,
    budget: Arc<tokio::sync::Semaphore>,
}

impl ChunkOut {
    pub(crate) fn new(
        tx: mpsc::Sender<Msg>,
        task: Arc<ScanTask>,
        options: ScanOptions,
        cancel: CancellationToken,
        budget: Arc<tokio::sync::Semaphore>,
    ) -> Self {
        Self {
            tx,
            task,
            builder: BatchBuilder::new(options.batch_rows, options.batch_bytes),
            rows: 0,
            irregular: 0,
            versions: None,
            cancel,
            budget,
        }
    }

    pub(crate) fn builder(&mut self) -> &mut BatchBuilder {
        &mut self.builder
    }

    /// Ends the row whose values were just written to the builder.
    pub(crate) fn row_done(&mut self) {
        self.builder.end_row();
        self.rows += 1;
    }

    pub(crate) fn note_irregular(&mut self, values: u64) {
        self.irregular += values;
    }

    pub(crate) async fn flush_if_full(&mut self) -> Result<(), DbError> {
        if self.builder.is_full() {
            self.flush().await?;
        }
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> Result<(), DbError> {
        if self.builder.rows() == 0 {
            return Ok(());
        }
        let batch = self.builder.take();
        let share = budget_share(&batch);
        tokio::select! {
            sent = async {
                let permit = self
                    .budget
                    .clone()
                    .acquire_many_owned(share)
                    .await
                    .map_err(|_| DbError::Cancelled)?;
                self.tx
                    .send(Msg::Batch(self.task.clone(), batch, permit))
                    .await
                    .map_err(|_| DbError::Cancelled)
            } => sent,
            () = self.cancel.cancelled() => Err(DbError::Cancelled),
        }
    }

    pub(crate) fn flush_if_full_blocking(&mut self) -> Result<(), DbError> {
        if self.cancel.is_cancelled() {
            return Err(DbError::Cancelled);
        }
        if self.builder.is_full() {
            self.flush_blocking()?;
        }
        Ok(())
    }

    fn flush_blocking(&mut self) -> Result<(), DbError> {
        if self.builder.rows() == 0 {
            return Ok(());
        }
        let batch = self.builder.take();
        let share = budget_share(&batch);
        // A blocking reader's thread (SQLite) waits for its share on the runtime's handle.
        let permit = tokio::runtime::Handle::current()
            .block_on(self.budget.clone().acquire_many_owned(share))
            .map_err(|_| DbError::Cancelled)?;
        self.tx
            .blocking_send(Msg::Batch(self.task.clone(), batch, permit))
            .map_err(|_| DbError::Cancelled)
    }
}

/// Reads `tasks` of `tables` from the snapshot with one worker per session, each feeding one
/// of `sinks` (there must be as many sinks as the snapshot has sessions). Returns the sinks.
pub async fn scan<S: BatchSink>(
    snapshot: &mut Snapshot,
    tables: Arc<Vec<Table>>,
    tasks: Vec<ScanTask>,
    sinks: Vec<S>,
    options: ScanOptions,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<Vec<S>, ScanError<S::Error>> {
    let sessions = snapshot.take_sessions();
    assert_eq!(sessions.len(), sinks.len(), "one sink per snapshot session");
    let queue = Arc::new(Mutex::new(VecDeque::from(tasks)));
    let target = Arc::new(snapshot.target().clone());
    let identity: Option<Arc<str>> = if options.fingerprints {
        snapshot.change_identity().map(Arc::from)
    } else {
        None
    };
    let table_fingerprints: Arc<Vec<Option<String>>> = Arc::new(
        tables
            .iter()
            .map(|t| {
                identity.as_ref()?;
                snapshot.table_fingerprint(&t.name).map(str::to_owned)
            })
            .collect(),
    );
    let budget = in_flight_budget();
    let mut readers = Vec::new();
    let mut consumers = Vec::new();
    for (session, mut sink) in sessions.into_iter().zip(sinks) {
        let (tx, mut rx) = mpsc::channel::<Msg>(CHANNEL_DEPTH);
        let cancel_sink = cancel.clone();
        let progress = progress.clone();
        let tables_sink = tables.clone();
        consumers.push(tokio::task::spawn_blocking(move || {
            while let Some(msg) = rx.blocking_recv() {
                let result = match msg {
                    Msg::Batch(task, batch, permit) => {
                        progress.event(ProgressEvent::Rows {
                            table: tables_sink[task.table].name.clone(),
                            rows: u64::try_from(batch.len()).unwrap_or(0),
                            bytes: u64::try_from(batch.byte_len()).unwrap_or(0),
                        });
                        let done = sink.batch(&task, batch);
                        drop(permit);
                        done
                    }
                    Msg::Done(task, rows, irregular) => sink.chunk_done(&task, rows, irregular),
                    Msg::Fingerprint(task, fp, unchanged) => {
                        sink.fingerprint(&task, fp, unchanged).map(|rows| {
                            if rows > 0 {
                                progress.event(ProgressEvent::Rows {
                                    table: tables_sink[task.table].name.clone(),
                                    rows,
                                    bytes: 0,
                                });
                            }
                        })
                    }
                };
                if let Err(e) = result {
                    cancel_sink.cancel();
                    return Err(e);
                }
            }
            Ok(sink)
        }));
        let worker = Worker {
            queue: queue.clone(),
            tables: tables.clone(),
            target: target.clone(),
            identity: identity.clone(),
            table_fingerprints: table_fingerprints.clone(),
            tx,
            options,
            cancel: cancel.clone(),
            budget: budget.clone(),
        };
        let cancel = cancel.clone();
        readers.push(tokio::spawn(async move {
            let result = worker.run(session).await;
            if result.is_err() {
                cancel.cancel();
            }
            result
        }));
    }
    let mut first_err: Option<ScanError<S::Error>> = None;
    let mut keep = |e: ScanError<S::Error>| {
        // A cancellation is the echo of the first real error: keep the cause.
        let is_cancel = matches!(e, ScanError::Db(DbError::Cancelled));
        if first_err.is_none()
            || (!is_cancel && matches!(first_err, Some(ScanError::Db(DbError::Cancelled))))
        {
            first_err = Some(e);
        }
    };
    for r in readers {
        match r.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => keep(ScanError::Db(e)),
            Err(join) => keep(ScanError::Db(DbError::query(
                target.display(),
                "reading",
                join.to_string(),
            ))),
        }
    }
    let mut done = Vec::new();
    for c in consumers {
        match c.await {
            Ok(Ok(sink)) => done.push(sink),
            Ok(Err(e)) => keep(ScanError::Sink(e)),
            Err(join) => keep(ScanError::Db(DbError::query(
                target.display(),
                "consuming",
                join.to_string(),
            ))),
        }
    }
    match first_err {
        Some(e) => Err(e),
        None if cancel.is_cancelled() => Err(ScanError::Db(DbError::Cancelled)),
        None => Ok(done),
    }
}

/// One reader: takes tasks from the shared queue and sends their batches to its sink.
struct Worker {
    queue: Arc<Mutex<VecDeque<ScanTask>>>,
    tables: Arc<Vec<Table>>,
    target: Arc<crate::Target>,
    /// The snapshot's change identity when chunks are fingerprinted.
    identity: Option<Arc<str>>,
    /// Per table, its fingerprint when the engine fingerprints whole tables (MariaDB).
    table_fingerprints: Arc<Vec<Option<String>>>,
    tx: mpsc::Sender<Msg>,
    options: ScanOptions,
    cancel: CancellationToken,
    budget: Arc<tokio::sync::Semaphore>,
}

impl Worker {
    async fn run(self, mut session: Session) -> Result<(), DbError> {
        let (target, tx) = (&*self.target, &self.tx);
        loop {
            if self.cancel.is_cancelled() {
                return Err(DbError::Cancelled);
            }
            let Some(task) = self
                .queue
                .lock()
                .expect("the task queue is never poisoned")
                .pop_front()
            else {
                break;
            };
            let task = Arc::new(task);
            let table = &self.tables[task.table];
            let mut tail = range_tail(target, table, &task.range);
            let whole_table = self.table_fingerprints[task.table].as_deref();
            if let (Some(identity), Some(expected)) = (&self.identity, &task.unchanged_if) {
                let now = match (&mut session, whole_table) {
                    (Session::Pg(conn), _) => Some(format!(
                        "{identity}/{}",
                        crate::pg::range_fingerprint(conn, target, table, &tail).await?
                    )),
                    (_, fp) => fp.map(str::to_owned),
                };
                if let Some(fp) = now.filter(|fp| fp == expected) {
                    tx.send(Msg::Fingerprint(task, fp, true))
                        .await
                        .map_err(|_| DbError::Cancelled)?;
                    continue;
                }
            }
            if let (true, Some(k)) = (self.options.ordered, table.split_key()) {
                tail.push_str(&format!(
                    " ORDER BY {}",
                    crate::quote::ident_list(target.engine(), &k.columns)
                ));
            }
            let mut out = ChunkOut::new(
                tx.clone(),
                task.clone(),
                self.options,
                self.cancel.clone(),
                self.budget.clone(),
            );
            if self.identity.is_some() && matches!(session, Session::Pg(_)) {
                out.versions = Some(crate::pg::RowVersionSum::default());
            }
            let (next, mut out) = session.read_chunk(target, table, tail, out).await?;
            session = next;
            out.flush().await?;
            let (rows, irregular) = (out.rows, out.irregular);
            let fp = match (&self.identity, out.versions) {
                (Some(identity), Some(sum)) => Some(format!("{identity}/{}", sum.fingerprint())),
                _ => whole_table.map(str::to_owned),
            };
            if let Some(fp) = fp {
                tx.send(Msg::Fingerprint(task.clone(), fp, false))
                    .await
                    .map_err(|_| DbError::Cancelled)?;
            }
            tx.send(Msg::Done(task, rows, irregular))
                .await
                .map_err(|_| DbError::Cancelled)?;
        }
        session.close().await;
        Ok(())
    }
}

/// The ` WHERE …` that limits a read of `table` to `range` (empty for the whole table).
pub(crate) fn range_tail(target: &crate::Target, table: &Table, range: &KeyRange) -> String {
    table
        .split_key()
        .and_then(|k| plan::range_predicate(target.engine(), &k.columns, range))
        .map(|p| format!(" WHERE {p}"))
        .unwrap_or_default()
}

impl Session {
    /// Reads one chunk; the session is handed back (SQLite reads on a blocking thread).
    async fn read_chunk(
        self,
        target: &crate::Target,
        table: &Table,
        tail: String,
        mut out: ChunkOut,
    ) -> Result<(Self, ChunkOut), DbError> {
        match self {
            Session::Pg(mut conn) => {
                crate::pg::read_chunk(&mut conn, target, table, &tail, &mut out).await?;
                Ok((Session::Pg(conn), out))
            }
            Session::My(mut conn) => {
                crate::mysql::read_chunk(&mut conn, target, table, &tail, &mut out).await?;
                Ok((Session::My(conn), out))
            }
            Session::Sqlite(conn) => {
                let (target2, table2) = (target.clone(), table.clone());
                let (conn, out, result) = tokio::task::spawn_blocking(move || {
                    let result =
                        crate::sqlite::read_chunk(&conn, &target2, &table2, &tail, &mut out);
                    (conn, out, result)
                })
                .await
                .map_err(|e| DbError::query(target.display(), "reading", e.to_string()))?;
                result?;
                Ok((Session::Sqlite(conn), out))
            }
        }
    }
}
