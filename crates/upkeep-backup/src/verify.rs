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
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub id: String,
    pub finished_at: String,
    pub engine: Engine,
    pub source: String,
    pub tables: usize,
    pub rows: u64,
    pub bytes: u64,
    pub tags: Vec<String>,
}

/// Every snapshot in the repository, oldest first.
pub fn list_snapshots(repo: &std::path::Path) -> Result<Vec<SnapshotSummary>, BackupError> {
    let repo = Repository::open(repo)?;
    let mut ids = repo.snapshot_ids()?;
    ids.sort();
    ids.iter()
        .map(|id| {
            let m = repo.load_manifest(id)?;
            Ok(SnapshotSummary {
                id: m.id.clone(),
                finished_at: m.finished_at.clone(),
                engine: m.engine,
                source: m.source.clone(),
                tables: m.tables.len(),
                rows: m.tables.iter().map(|t| t.rows).sum(),
                bytes: m.tables.iter().map(|t| t.bytes).sum(),
                tags: m.tags.clone(),
            })
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
        match repo.load_manifest(&id) {
            Err(e @ BackupError::Corrupt { .. }) => problems.push(e.to_string()),
            Err(e) => return Err(e),
            Ok(m) => {
                check_snapshot(&repo, &m, options.read_data, &mut checks, &mut problems)?;
                if let Some(target) = &options.against {
                    compare_live(&m, target, options.jobs, cancel.clone(), &mut problems).await?;
                }
            }
        }
        snapshots.push(SnapshotCheck {
            snapshot: id,
            ok: problems.is_empty(),
            problems,
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

async fn compare_live(
    m: &Manifest,
    target: &Target,
    jobs: usize,
    cancel: CancellationToken,
    problems: &mut Vec<String>,
) -> Result<(), BackupError> {
    let mut entries = Vec::with_capacity(m.tables.len());
    let mut tables = Vec::with_capacity(m.tables.len());
    for t in &m.tables {
        match m.schema.table(&t.name) {
            Some(schema) => {
                entries.push(t);
                tables.push(schema.clone());
            }
            None => problems.push(format!(
                "table {}: the snapshot has no schema for it",
                t.name
            )),
        }
    }
    let digests = upkeep_db::digest_tables(target, tables, jobs, cancel).await?;
    for (t, d) in entries.into_iter().zip(digests) {
        if d != t.digest {
            problems.push(format!(
                "table {}: the live database digests to {d}, the snapshot to {}",
                t.name, t.digest
            ));
        }
    }
    Ok(())
}
