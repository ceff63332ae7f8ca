//! Integration tests of backup, restore and verify on real databases.

mod consistency;
mod corruption;
mod dedup;
mod limits;
mod retention;
mod roundtrip;
mod schema;
mod stale;
mod unchanged;

use std::path::Path;
use std::sync::Arc;

use upkeep_backup::{BackupOptions, BackupReport, RestoreOptions, RestoreReport};
use upkeep_core::NoProgress;
use upkeep_db::Target;

pub(crate) async fn backup(target: &Target, repo: &Path) -> BackupReport {
    backup_with(target, repo, |_| {}).await
}

pub(crate) async fn backup_with(
    target: &Target,
    repo: &Path,
    configure: impl FnOnce(&mut BackupOptions),
) -> BackupReport {
    let mut options = BackupOptions::new(target.clone(), repo.to_owned());
    options.plan.chunk_rows = 500;
    configure(&mut options);
    upkeep_backup::backup(options, Arc::new(NoProgress), Default::default())
        .await
        .unwrap_or_else(|e| panic!("backup of {target} failed: {}", chain(&e)))
}

pub(crate) async fn restore(
    repo: &Path,
    target: &Target,
    configure: impl FnOnce(&mut RestoreOptions),
) -> RestoreReport {
    let mut options = RestoreOptions::new(repo.to_owned(), target.clone());
    configure(&mut options);
    upkeep_backup::restore(options, Default::default())
        .await
        .unwrap_or_else(|e| panic!("restore into {target} failed: {}", chain(&e)))
}

/// `upkeep verify` of every snapshot in `repo`.
async fn verify(repo: &Path, read_data: bool) -> upkeep_backup::VerifyReport {
    upkeep_backup::verify(
        upkeep_backup::VerifyOptions {
            repo: repo.to_owned(),
            snapshots: vec![],
            read_data,
            against: None,
            jobs: 1,
        },
        Default::default(),
    )
    .await
    .unwrap()
}

/// An error and its causes, as the CLI prints them.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
