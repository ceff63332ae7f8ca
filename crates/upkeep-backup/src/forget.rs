//! `upkeep forget`: retention as restic does it, and `--prune` of unreferenced chunks under an
//! exclusive lock, so it never races a running backup.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike};
use serde::{Deserialize, Serialize};

use crate::repo::Repository;
use crate::BackupError;

#[derive(Clone, Debug, Default)]
pub struct ForgetOptions {
    pub repo: std::path::PathBuf,
    /// Snapshots to remove by id (or unique prefix), damaged ones included, besides what the
    /// policy removes.
    pub snapshots: Vec<String>,
    pub keep_last: usize,
    pub keep_daily: usize,
    pub keep_weekly: usize,
    pub keep_monthly: usize,
    pub prune: bool,
    pub dry_run: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForgetReport {
    pub keep: Vec<String>,
    pub remove: Vec<String>,
    /// Snapshots whose manifest cannot be read, with why; kept unless named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<DamagedSnapshot>,
    pub pruned_chunks: u64,
    pub pruned_bytes: u64,
    /// Leftovers of killed runs removed from `tmp/` by the prune.
    #[serde(default)]
    pub pruned_tmp_files: u64,
    pub dry_run: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DamagedSnapshot {
    pub id: String,
    pub problem: String,
}

pub fn forget(options: &ForgetOptions) -> Result<ForgetReport, BackupError> {
    let policy =
        options.keep_last + options.keep_daily + options.keep_weekly + options.keep_monthly > 0;
    if !policy && options.snapshots.is_empty() {
        return Err(BackupError::Usage(
            "no retention policy and no snapshot given: pass snapshot ids, or at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly".into(),
        ));
    }
    let repo = Repository::open(&options.repo)?;
    let lock = if options.dry_run {
        None
    } else {
        Some(repo.lock(options.prune)?)
    };
    let named: HashSet<String> = options
        .snapshots
        .iter()
        .map(|s| repo.resolve(s))
        .collect::<Result<_, _>>()?;
    // Each manifest is read once: its time for the policy, its chunks for the prune.
    let mut snaps: Vec<(String, DateTime<chrono::FixedOffset>)> = Vec::new();
    let mut chunks_of: HashMap<String, Vec<String>> = HashMap::new();
    let mut damaged = Vec::new();
    for id in repo.snapshot_ids()? {
        let m = match repo.load_manifest(&id) {
            Ok(m) => m,
            Err(BackupError::Corrupt { what }) => {
                damaged.push(DamagedSnapshot { id, problem: what });
                continue;
            }
            Err(e) => return Err(e),
        };
        let Ok(at) = DateTime::parse_from_rfc3339(&m.finished_at) else {
            damaged.push(DamagedSnapshot {
                problem: format!("snapshot {id} has a bad finished_at: {}", m.finished_at),
                id,
            });
            continue;
        };
        if options.prune {
            chunks_of.insert(
                id.clone(),
                m.tables
                    .into_iter()
                    .flat_map(|t| t.chunks.into_iter().map(|c| c.id))
                    .collect(),
            );
        }
        snaps.push((id, at));
    }
    // Newest first.
    snaps.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let mut keep: HashSet<&str> = HashSet::new();
    if policy {
        for (id, _) in snaps.iter().take(options.keep_last) {
            keep.insert(id);
        }
        let mut bucketed = |n: usize, key: &dyn Fn(&DateTime<chrono::FixedOffset>) -> String| {
            let mut seen: Vec<String> = Vec::new();
            for (id, at) in &snaps {
                let k = key(at);
                if seen.len() >= n {
                    break;
                }
                if !seen.contains(&k) {
                    seen.push(k);
                    keep.insert(id);
                }
            }
        };
        bucketed(options.keep_daily, &|t| t.format("%Y-%m-%d").to_string());
        bucketed(options.keep_weekly, &|t| {
            let w = t.iso_week();
            format!("{}-W{}", w.year(), w.week())
        });
        bucketed(options.keep_monthly, &|t| t.format("%Y-%m").to_string());
    } else {
        // Only the named snapshots go.
        keep.extend(snaps.iter().map(|(id, _)| id.as_str()));
    }
    let (kept, mut removed): (Vec<_>, Vec<_>) = snaps
        .iter()
        .map(|(id, _)| id.clone())
        .partition(|id| keep.contains(id.as_str()) && !named.contains(id));
    let (damaged_named, damaged): (Vec<_>, Vec<_>) =
        damaged.into_iter().partition(|d| named.contains(&d.id));
    removed.extend(damaged_named.into_iter().map(|d| d.id));

    let mut report = ForgetReport {
        keep: kept,
        remove: removed,
        damaged,
        pruned_chunks: 0,
        pruned_bytes: 0,
        pruned_tmp_files: 0,
        dry_run: options.dry_run,
    };
    if options.prune && !report.damaged.is_empty() {
        // Their chunks cannot be told: a prune would delete what they may still need.
        return Err(BackupError::PruneBlocked {
            location: repo.location(),
            ids: report
                .damaged
                .iter()
                .map(|d| d.id.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    if let Some(lock) = &lock {
        lock.check()?;
        for id in &report.remove {
            repo.delete_manifest(id)?;
        }
    }
    if options.prune {
        let referenced: HashSet<&String> = report
            .keep
            .iter()
            .filter_map(|id| chunks_of.get(id))
            .flatten()
            .collect();
        let mut since_check = 0;
        for id in repo.list_chunks()? {
            if !referenced.contains(&id) {
                report.pruned_chunks += 1;
                report.pruned_bytes += repo.chunk_size(&id)?;
                if let Some(lock) = &lock {
                    // A prune whose lock was taken away stops: a backup may be running.
                    since_check += 1;
                    if since_check >= 1000 {
                        lock.check()?;
                        since_check = 0;
                    }
                    repo.delete_chunk(&id)?;
                }
            }
        }
        if let Some(lock) = &lock {
            report.pruned_tmp_files = repo.clean_tmp(lock)?;
        }
    }
    Ok(report)
}
