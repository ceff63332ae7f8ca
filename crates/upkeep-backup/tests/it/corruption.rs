//! verify detects and names a flipped byte, a truncated chunk, a deleted chunk and an edited
//! manifest.

use std::path::{Path, PathBuf};

use upkeep_backup::BackupError;
use upkeep_core::Engine;
use upkeep_test_support::TestDb;

use crate::{backup, verify};

fn chunk_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(repo.join("chunks")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

async fn fresh_repo() -> (TestDb, tempfile::TempDir) {
    let db = TestDb::new(Engine::Sqlite).await;
    db.load_kitchen_sink().await;
    let repo = tempfile::tempdir().unwrap();
    backup(&db.target, repo.path()).await;
    assert!(
        verify(repo.path(), true).await.ok,
        "a fresh repository verifies"
    );
    (db, repo)
}

fn problems(report: &upkeep_backup::VerifyReport) -> String {
    report
        .snapshots
        .iter()
        .flat_map(|s| s.problems.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn sqlite_flipped_byte_is_named() {
    let (_db, repo) = fresh_repo().await;
    let victim = &chunk_files(repo.path())[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(victim, bytes).unwrap();
    let report = verify(repo.path(), true).await;
    assert!(!report.ok);
    let id = victim.file_name().unwrap().to_str().unwrap();
    assert!(problems(&report).contains(id), "{}", problems(&report));
}

#[tokio::test]
async fn sqlite_truncated_chunk_is_named() {
    let (_db, repo) = fresh_repo().await;
    let victim = chunk_files(repo.path()).pop().unwrap();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let report = verify(repo.path(), true).await;
    assert!(!report.ok);
    assert!(problems(&report).contains(victim.file_name().unwrap().to_str().unwrap()));
}

#[tokio::test]
async fn sqlite_deleted_chunk_is_found_without_reading_data() {
    let (_db, repo) = fresh_repo().await;
    let victim = chunk_files(repo.path()).remove(1);
    std::fs::remove_file(&victim).unwrap();
    let report = verify(repo.path(), false).await;
    assert!(!report.ok);
    let p = problems(&report);
    assert!(
        p.contains("is missing") && p.contains(victim.file_name().unwrap().to_str().unwrap()),
        "{p}"
    );
}

#[tokio::test]
async fn sqlite_edited_manifest_is_detected() {
    let (db, repo) = fresh_repo().await;
    let snaps = std::fs::read_dir(repo.path().join("snapshots"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&snaps).unwrap();
    // Claim one more row in a table than its chunks hold.
    let edited = text.replacen("\"rows\": 2000,", "\"rows\": 2001,", 1);
    assert_ne!(edited, text);
    std::fs::write(&snaps, edited).unwrap();
    let report = verify(repo.path(), false).await;
    assert!(!report.ok);
    assert!(
        problems(&report).contains("numbers"),
        "{}",
        problems(&report)
    );
    // A restore refuses the damaged snapshot rather than loading it.
    let copy = TestDb::new(Engine::Sqlite).await;
    let err = upkeep_backup::restore(
        upkeep_backup::RestoreOptions::new(repo.path().to_owned(), copy.target.clone()),
        Default::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
    drop(db);
}

#[tokio::test]
async fn sqlite_restore_from_a_damaged_chunk_fails_by_name() {
    let (_db, repo) = fresh_repo().await;
    for f in chunk_files(repo.path()) {
        let mut bytes = std::fs::read(&f).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&f, bytes).unwrap();
    }
    let copy = TestDb::new(Engine::Sqlite).await;
    let err = upkeep_backup::restore(
        upkeep_backup::RestoreOptions::new(repo.path().to_owned(), copy.target.clone()),
        Default::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("chunk"), "{err}");
}

#[tokio::test]
async fn sqlite_chunks_shared_by_snapshots_are_read_once_and_a_damaged_one_names_each() {
    let (db, repo) = fresh_repo().await;
    backup(&db.target, repo.path()).await; // unchanged: every chunk shared
    let chunks = chunk_files(repo.path());
    let report = verify(repo.path(), true).await;
    assert!(report.ok);
    assert_eq!(report.snapshots.len(), 2);
    assert_eq!(report.chunks_checked, chunks.len() as u64);
    // A damaged shared chunk is named in both snapshots.
    std::fs::write(&chunks[0], b"not zstd").unwrap();
    let report = verify(repo.path(), true).await;
    assert!(
        report.snapshots.iter().all(|s| !s.ok),
        "{}",
        problems(&report)
    );
}
