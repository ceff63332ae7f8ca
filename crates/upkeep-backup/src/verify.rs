//! `upkeep verify` and `upkeep snapshots`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use upkeep_core::{stored_row_hash, Batch, Digest, Engine};
use upkeep_db::Target;

use crate::manifest::Manifest;
use crate::repo::Repository;
use crate::BackupError;

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub repo: std::path::PathBuf,
    /// Snapshot ids (or `latest`); empty means every snapshot.
    pub snapshots: Vec<String>,
    /// Decompress and rehash every chunk and recompute every table digest from its rows.
    pub read_data: bool,
    /// Also compare the snapshot's tables with this live database by digest.
    pub against: Option<Target>,
    pub jobs: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub repository: String,
    pub snapshots: Vec<SnapshotCheck>,
    pub chunks_checked: u64,
    pub ok: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotCheck {
    pub snapshot: String,
    pub ok: bool,
    /// One line per problem: the table, the chunk, what is wrong.
    pub problems: Vec<String>,
    /// With `--against`: the key ranges whose live rows differ because they changed since
    /// the snapshot (their change fingerprint changed too); not a problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_since: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub id: String,
    pub finished_at: String,
    /// `None` for a damaged snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
    pub source: String,
    pub tables: usize,
    pub rows: u64,
    pub bytes: u64,
    pub tags: Vec<String>,
    /// Why the manifest cannot be read, for a damaged snapshot (its other fields are empty);
    /// `upkeep forget ID` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// Every snapshot in the repository, oldest first.
pub fn list_snapshots(repo: &std::path::Path) -> Result<Vec<SnapshotSummary>, BackupError> {
    let repo = Repository::open(repo)?;
    let mut ids = repo.snapshot_ids()?;
    ids.sort();
    ids.iter()
        .map(|id| match repo.load_manifest(id) {
            Ok(m) => Ok(SnapshotSummary {
                id: m.id.clone(),
                finished_at: m.finished_at.clone(),
                engine: Some(m.engine),
                source: m.source.clone(),
                tables: m.tables.len(),
                rows: m.tables.iter().map(|t| t.rows).sum(),
                bytes: m.tables.iter().map(|t| t.bytes).sum(),
                tags: m.tags.clone(),
                damaged: None,
            }),
            Err(BackupError::Corrupt { what }) => Ok(SnapshotSummary {
                id: id.clone(),
                finished_at: String::new(),
                engine: None,
                source: String::new(),
                tables: 0,
                rows: 0,
                bytes: 0,
                tags: Vec::new(),
                damaged: Some(what),
            }),
            Err(e) => Err(e),
        })
        .collect()
}

pub async fn verify(
    options: VerifyOptions,
    cancel: CancellationToken,
) -> Result<VerifyReport, BackupError> {
    let repo = Repository::open(&options.repo)?;
    let mut ids: Vec<String> = if options.snapshots.is_empty() {
        repo.snapshot_ids()?
    } else {
        options
            .snapshots
            .iter()
            .map(|s| repo.resolve(s))
            .collect::<Result<_, _>>()?
    };
    ids.sort();
    let mut checks = ChunkChecks::default();
    let mut snapshots = Vec::new();
    for id in ids {
        let mut problems = Vec::new();
        let mut changed_since = Vec::new();
        match repo.load_manifest(&id) {
            Err(e @ BackupError::Corrupt { .. }) => problems.push(e.to_string()),
            Err(e) => return Err(e),
            Ok(m) => {
                check_snapshot(&repo, &m, options.read_data, &mut checks, &mut problems)?;
                if let Some(target) = &options.against {
                    compare_live(
                        &m,
                        target,
                        options.jobs,
                        cancel.clone(),
                        &mut problems,
                        &mut changed_since,
                    )
                    .await?;
                }
            }
        }
        snapshots.push(SnapshotCheck {
            snapshot: id,
            ok: problems.is_empty(),
            problems,
            changed_since,
        });
    }
    Ok(VerifyReport {
        repository: repo.location(),
        ok: snapshots.iter().all(|s| s.ok),
        chunks_checked: checks.chunks_read(),
        snapshots,
    })
}

/// A chunk read as rows of a table with this many columns and these `json` columns.
type ChunkRead = (String, usize, Vec<usize>);

/// What was learnt of each chunk, so that a chunk shared by many snapshots (the usual case)
/// is looked up or read once.
#[derive(Default)]
struct ChunkChecks {
    present: HashMap<String, bool>,
    /// (chunk, columns, json columns) → the digest and row count of its rows, or what is
    /// wrong with it.
    read: HashMap<ChunkRead, Result<(Digest, usize), String>>,
}

impl ChunkChecks {
    fn chunks_read(&self) -> u64 {
        self.read.len() as u64
    }
}

fn check_snapshot(
    repo: &Repository,
    m: &Manifest,
    read_data: bool,
    checks: &mut ChunkChecks,
    problems: &mut Vec<String>,
) -> Result<(), BackupError> {
    for t in &m.tables {
        let model = m.schema.table(&t.name);
        let columns = model.map_or(0, |s| s.columns.len());
        // Stored JSON is the server's text; the digest hashes its canonical form (canonical
        // JSON, as older snapshots and SQLite's store it, is its own).
        let json = model
            .map(upkeep_core::Table::json_columns)
            .unwrap_or_default();
        let mut digest = Digest::default();
        let mut complete = true;
        for c in &t.chunks {
            if !read_data {
                let present = match checks.present.get(&c.id) {
                    Some(&p) => p,
                    None => {
                        let p = repo.has_chunk(&c.id)?;
                        checks.present.insert(c.id.clone(), p);
                        p
                    }
                };
                if !present {
                    problems.push(format!("table {}: chunk {} is missing", t.name, c.id));
                    complete = false;
                }
                continue;
            }
            let key = (c.id.clone(), columns, json.clone());
            let read = match checks.read.get(&key) {
                Some(r) => r.clone(),
                None => {
                    let r = match repo.get_chunk(&c.id, c.bytes) {
                        Ok(content) => match Batch::from_encoded(content, columns) {
                            Ok(batch) => {
                                let mut d = Digest::default();
                                let mut scratch = Vec::new();
                                batch
                                    .rows()
                                    .try_for_each(|r| {
                                        d.add_hash(&stored_row_hash(r, &json, &mut scratch)?);
                                        Ok(())
                                    })
                                    .map(|()| (d, batch.len()))
                                    .map_err(|e: upkeep_core::MalformedRow| {
                                        format!("chunk {} has malformed rows: {e}", c.id)
                                    })
                            }
                            Err(e) => Err(format!("chunk {} has malformed rows: {e}", c.id)),
                        },
                        Err(BackupError::Corrupt { what }) => Err(what),
                        Err(e) => return Err(e),
                    };
                    checks.read.insert(key, r.clone());
                    r
                }
            };
            match read {
                Ok((d, rows)) if u64::try_from(rows).ok() == Some(c.rows) => digest.merge(&d),
                Ok((_, rows)) => {
                    problems.push(format!(
                        "table {}: chunk {} holds {rows} rows, the manifest says {}",
                        t.name, c.id, c.rows
                    ));
                    complete = false;
                }
                Err(what) => {
                    problems.push(format!("table {}: {what}", t.name));
                    complete = false;
                }
            }
        }
        // A partitioned table stored as its partitions has no chunks; the manifest check
        // holds it to their digests.
        if read_data && complete && t.partitions.is_empty() && digest != t.digest {
            problems.push(format!(
                "table {}: the stored rows digest to {digest}, the manifest says {}",
                t.name, t.digest
            ));
        }
    }
    Ok(())
}

/// Per (table, range): the digest of the rows read and their change fingerprint.
#[derive(Default)]
struct RangeSink {
    ranges: HashMap<(usize, usize), (Digest, Option<String>)>,
}

impl upkeep_db::BatchSink for RangeSink {
    type Error = std::convert::Infallible;

    fn batch(&mut self, task: &upkeep_db::ScanTask, batch: Batch) -> Result<(), Self::Error> {
        let entry = self.ranges.entry((task.table, task.chunk)).or_default();
        batch.rows().for_each(|row| entry.0.add_row(row));
        Ok(())
    }

    fn chunk_done(
        &mut self,
        task: &upkeep_db::ScanTask,
        _rows: u64,
        _irregular: u64,
    ) -> Result<(), Self::Error> {
        self.ranges.entry((task.table, task.chunk)).or_default();
        Ok(())
    }

    fn fingerprint(
        &mut self,
        task: &upkeep_db::ScanTask,
        fingerprint: String,
        _unchanged: bool,
    ) -> Result<u64, Self::Error> {
        self.ranges.entry((task.table, task.chunk)).or_default().1 = Some(fingerprint);
        Ok(0)
    }
}

/// Compares the snapshot with the live database, read in one consistent snapshot of its
/// own. A table whose key ranges carry change fingerprints under the live server's identity
/// is compared range by range: a range whose rows differ and whose fingerprint changed was
/// changed since the snapshot (`changed_since`, not a problem); one whose rows differ while
/// its fingerprint says nothing changed means the snapshot holds rows the source never had
/// at that point, a problem. Other tables are compared whole: any difference is a problem.
async fn compare_live(
    m: &Manifest,
    target: &Target,
    jobs: usize,
    cancel: CancellationToken,
    problems: &mut Vec<String>,
    changed_since: &mut Vec<String>,
) -> Result<(), BackupError> {
    let mut snapshot = upkeep_db::Snapshot::open_fingerprinted(target, jobs).await?;
    let result = compare_in(m, &mut snapshot, cancel, problems, changed_since).await;
    snapshot.close().await;
    result
}

async fn compare_in(
    m: &Manifest,
    snapshot: &mut upkeep_db::Snapshot,
    cancel: CancellationToken,
    problems: &mut Vec<String>,
    changed_since: &mut Vec<String>,
) -> Result<(), BackupError> {
    let identity = snapshot.change_identity().map(|i| format!("{i}/"));
    let mut entries = Vec::with_capacity(m.tables.len());
    let mut tables = Vec::with_capacity(m.tables.len());
    let mut given = Vec::with_capacity(m.tables.len());
    for t in &m.tables {
        // A partitioned table stored as its partitions is their sum, compared through them.
        if !t.partitions.is_empty() {
            continue;
        }
        let Some(model) = m.schema.table(&t.name) else {
            problems.push(format!(
                "table {}: the snapshot has no schema for it",
                t.name
            ));
            continue;
        };
        let Some(live) = snapshot.schema().table(&t.name) else {
            problems.push(format!("table {}: missing from the live database", t.name));
            continue;
        };
        let columns = |t: &upkeep_core::Table| -> Vec<(String, upkeep_core::LogicalType)> {
            t.columns
                .iter()
                .map(|c| (c.name.clone(), c.logical))
                .collect()
        };
        if columns(live) != columns(model) {
            let names = |t: &upkeep_core::Table| {
                t.columns
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.logical))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            problems.push(format!(
                "table {}: its columns differ: the snapshot has ({}), the live database ({})",
                t.name,
                names(model),
                names(live)
            ));
            continue;
        }
        let comparable = identity.as_ref().is_some_and(|i| {
            !t.segments.is_empty() && t.segments.iter().all(|s| s.fingerprint.starts_with(i))
        });
        given.push(comparable.then(|| t.segments.iter().map(|s| s.range.clone()).collect()));
        entries.push(t);
        tables.push(model.clone());
    }
    let planned = snapshot
        .plan_tasks_given(&tables, upkeep_db::PlanOptions::default(), &given)
        .await?;
    let sinks = (0..snapshot.workers())
        .map(|_| RangeSink::default())
        .collect();
    let options = upkeep_db::ScanOptions {
        fingerprints: identity.is_some(),
        ..upkeep_db::ScanOptions::default()
    };
    let sinks = upkeep_db::scan(
        snapshot,
        std::sync::Arc::new(tables),
        planned.tasks,
        sinks,
        options,
        std::sync::Arc::new(upkeep_core::NoProgress),
        cancel,
    )
    .await
    .map_err(|e| match e {
        upkeep_db::ScanError::Db(e) => BackupError::Db(e),
        upkeep_db::ScanError::Sink(never) => match never {},
    })?;
    let mut ranges = HashMap::new();
    for sink in sinks {
        ranges.extend(sink.ranges);
    }
    let mut live_digests: HashMap<&upkeep_core::TableName, Digest> = HashMap::new();
    for (ti, t) in entries.iter().enumerate() {
        let mut whole = Digest::default();
        let count = planned.ranges[ti].len();
        for ci in 0..count {
            let (digest, fingerprint) = ranges.remove(&(ti, ci)).unwrap_or_default();
            whole.merge(&digest);
            if given[ti].is_none() {
                continue;
            }
            let segment = &t.segments[ci];
            if digest == segment.digest {
                continue;
            }
            let range = format!("table {} key range {}", t.name, segment.range);
            if fingerprint.as_deref() == Some(segment.fingerprint.as_str()) {
                problems.push(format!(
                    "{range}: the live rows digest to {digest}, the snapshot's to {}, though \
                     the change fingerprint says they did not change: the snapshot is stale \
                     (back up with --force)",
                    segment.digest
                ));
            } else {
                changed_since.push(range);
            }
        }
        if given[ti].is_none() && whole != t.digest {
            problems.push(format!(
                "table {}: the live database digests to {whole}, the snapshot to {}",
                t.name, t.digest
            ));
        }
        live_digests.insert(&t.name, whole);
    }
    // Partitioned tables: the sum of their partitions, as the manifest holds them.
    for t in m.tables.iter().filter(|t| !t.partitions.is_empty()) {
        let mut sum = Digest::default();
        for p in &t.partitions {
            if let Some(d) = live_digests.get(p) {
                sum.merge(d);
            }
        }
        let changed = t.partitions.iter().any(|p| {
            changed_since
                .iter()
                .any(|c| c.starts_with(&format!("table {p} ")))
        });
        if sum != t.digest && !changed {
            problems.push(format!(
                "table {}: its partitions digest to {sum} in the live database, the snapshot \
                 to {}",
                t.name, t.digest
            ));
        }
    }
    Ok(())
}
