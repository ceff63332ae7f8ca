//! `upkeep verify` and `upkeep snapshots`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use upkeep_core::{Batch, Digest, Engine};
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
    let mut checked: HashSet<String> = HashSet::new();
    let mut snapshots = Vec::new();
    for id in ids {
        let mut problems = Vec::new();
        match repo.load_manifest(&id) {
            Err(e @ BackupError::Corrupt { .. }) => problems.push(e.to_string()),
            Err(e) => return Err(e),
            Ok(m) => {
                check_snapshot(&repo, &m, options.read_data, &mut checked, &mut problems)?;
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
        chunks_checked: checked.len() as u64,
        snapshots,
    })
}

fn check_snapshot(
    repo: &Repository,
    m: &Manifest,
    read_data: bool,
    checked: &mut HashSet<String>,
    problems: &mut Vec<String>,
) -> Result<(), BackupError> {
    for t in &m.tables {
        let columns = m.schema.table(&t.name).map_or(0, |s| s.columns.len());
        let mut digest = Digest::default();
        let mut complete = true;
        for c in &t.chunks {
            if !read_data {
                if !repo.has_chunk(&c.id)? {
                    problems.push(format!("table {}: chunk {} is missing", t.name, c.id));
                    complete = false;
                }
                continue;
            }
            checked.insert(c.id.clone());
            match repo.get_chunk(&c.id, c.bytes) {
                Ok(content) => match Batch::from_encoded(content, columns) {
                    Ok(batch) if u64::try_from(batch.len()).ok() == Some(c.rows) => {
                        batch.rows().for_each(|r| digest.add_row(r));
                    }
                    Ok(batch) => {
                        problems.push(format!(
                            "table {}: chunk {} holds {} rows, the manifest says {}",
                            t.name,
                            c.id,
                            batch.len(),
                            c.rows
                        ));
                        complete = false;
                    }
                    Err(e) => {
                        problems.push(format!(
                            "table {}: chunk {} has malformed rows: {e}",
                            t.name, c.id
                        ));
                        complete = false;
                    }
                },
                Err(BackupError::Corrupt { what }) => {
                    problems.push(format!("table {}: {what}", t.name));
                    complete = false;
                }
                Err(e) => return Err(e),
            }
        }
        if read_data && complete && digest != t.digest {
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
    let tables: Vec<upkeep_core::Table> = m
        .tables
        .iter()
        .filter_map(|t| m.schema.table(&t.name).cloned())
        .collect();
    let digests = upkeep_db::digest_tables(target, tables, jobs, cancel).await?;
    for (t, d) in m.tables.iter().zip(digests) {
        if d != t.digest {
            problems.push(format!(
                "table {}: the live database digests to {d}, the snapshot to {}",
                t.name, t.digest
            ));
        }
    }
    Ok(())
}
