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
    pub pruned_chunks: u64,
    pub pruned_bytes: u64,
    pub dry_run: bool,
}

pub fn forget(options: &ForgetOptions) -> Result<ForgetReport, BackupError> {
    if options.keep_last + options.keep_daily + options.keep_weekly + options.keep_monthly == 0 {
        return Err(BackupError::Usage(
            "no retention policy given: pass at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly".into(),
        ));
    }
    let repo = Repository::open(&options.repo)?;
    let _lock = if options.dry_run {
        None
    } else {
        Some(repo.lock(options.prune)?)
    };
    // Each manifest is read once: its time for the policy, its chunks for the prune.
    let mut snaps: Vec<(String, DateTime<chrono::FixedOffset>)> = Vec::new();
    let mut chunks_of: HashMap<String, Vec<String>> = HashMap::new();
    for id in repo.snapshot_ids()? {
        let m = repo.load_manifest(&id)?;
        let at =
            DateTime::parse_from_rfc3339(&m.finished_at).map_err(|e| BackupError::Corrupt {
                what: format!("snapshot {id} has a bad finished_at: {e}"),
            })?;
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
    let (kept, removed): (Vec<_>, Vec<_>) = snaps
        .iter()
        .map(|(id, _)| id.clone())
        .partition(|id| keep.contains(id.as_str()));

    let mut report = ForgetReport {
        keep: kept,
        remove: removed,
        pruned_chunks: 0,
        pruned_bytes: 0,
        dry_run: options.dry_run,
    };
    if !options.dry_run {
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
        for id in repo.list_chunks()? {
            if !referenced.contains(&id) {
                report.pruned_chunks += 1;
                report.pruned_bytes += repo.chunk_size(&id)?;
                if !options.dry_run {
                    repo.delete_chunk(&id)?;
                }
            }
        }
    }
    Ok(report)
}
