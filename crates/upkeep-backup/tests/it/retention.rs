//! forget keeps by policy and prunes what no snapshot references, never while a backup runs.

use upkeep_backup::{BackupError, ForgetOptions};
use upkeep_core::Engine;
use upkeep_test_support::TestDb;

use crate::{backup, restore};

#[tokio::test]
async fn sqlite_forget_keeps_by_policy_and_prunes_unreferenced_chunks() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 20000)
         INSERT INTO t SELECT g, hex(randomblob(40)) FROM s;",
    )
    .await;
    let repo = tempfile::tempdir().unwrap();
    let first = backup(&db.target, repo.path()).await;
    db.execute("UPDATE t SET v = hex(randomblob(40));").await;
    let second = backup(&db.target, repo.path()).await;
    assert!(second.chunks_new > 0);

    let no_policy = upkeep_backup::forget(&ForgetOptions {
        repo: repo.path().to_owned(),
        prune: true,
        ..Default::default()
    });
    assert!(
        matches!(no_policy, Err(BackupError::Usage(_))),
        "forget without a policy must refuse"
    );

    let options = ForgetOptions {
        repo: repo.path().to_owned(),
        keep_last: 1,
        prune: true,
        dry_run: true,
        ..Default::default()
    };
    let dry = upkeep_backup::forget(&options).unwrap();
    assert_eq!(dry.remove, vec![first.snapshot.clone()]);
    assert_eq!(
        upkeep_backup::list_snapshots(repo.path()).unwrap().len(),
        2,
        "a dry run changes nothing"
    );

    let done = upkeep_backup::forget(&ForgetOptions {
        dry_run: false,
        ..options
    })
    .unwrap();
    assert_eq!(done.keep, vec![second.snapshot.clone()]);
    assert!(done.pruned_chunks > 0 && done.pruned_bytes > 0);
    let left = upkeep_backup::list_snapshots(repo.path()).unwrap();
    assert_eq!(left.len(), 1);
    let check = upkeep_backup::verify(
        upkeep_backup::VerifyOptions {
            repo: repo.path().to_owned(),
            snapshots: vec![],
            read_data: true,
            against: None,
            jobs: 1,
        },
        Default::default(),
    )
    .await
    .unwrap();
    assert!(check.ok, "{check:?}");
    let copy = TestDb::new(Engine::Sqlite).await;
    assert!(restore(repo.path(), &copy.target, |_| {}).await.verified);
}

#[tokio::test]
async fn sqlite_prune_waits_for_no_backup_and_backup_for_no_prune() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await;
    let dir = tempfile::tempdir().unwrap();
    backup(&db.target, dir.path()).await;
    let repo = upkeep_backup::Repository::open(dir.path()).unwrap();
    // A running backup holds a shared lock: prune must refuse.
    let running = repo.lock(false).unwrap();
    let options = ForgetOptions {
        repo: dir.path().to_owned(),
        keep_last: 1,
        prune: true,
        ..Default::default()
    };
    assert!(matches!(
        upkeep_backup::forget(&options),
        Err(BackupError::Locked { .. })
    ));
    drop(running);
    // A running prune holds the exclusive lock: a backup must refuse.
    let pruning = repo.lock(true).unwrap();
    let err = upkeep_backup::backup(
        upkeep_backup::BackupOptions::new(db.target.clone(), dir.path().to_owned()),
        std::sync::Arc::new(upkeep_core::NoProgress),
        Default::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Locked { .. }), "{err}");
    drop(pruning);
    upkeep_backup::forget(&options).unwrap();
}

/// Runs a prune the moment the backup it watches reads its first rows.
struct PruneDuringBackup {
    options: ForgetOptions,
    seen: std::sync::Mutex<Option<Result<upkeep_backup::ForgetReport, BackupError>>>,
}

impl upkeep_core::Progress for PruneDuringBackup {
    fn event(&self, event: upkeep_core::ProgressEvent) {
        if matches!(event, upkeep_core::ProgressEvent::Rows { .. }) {
            let mut seen = self.seen.lock().unwrap();
            if seen.is_none() {
                *seen = Some(upkeep_backup::forget(&self.options));
            }
        }
    }
}

#[tokio::test]
async fn sqlite_a_running_backup_holds_off_a_prune() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 5000)
         INSERT INTO t SELECT g, hex(randomblob(20)) FROM s;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    backup(&db.target, dir.path()).await;
    let hook = std::sync::Arc::new(PruneDuringBackup {
        options: ForgetOptions {
            repo: dir.path().to_owned(),
            keep_last: 1,
            prune: true,
            ..Default::default()
        },
        seen: std::sync::Mutex::new(None),
    });
    let second = upkeep_backup::backup(
        upkeep_backup::BackupOptions::new(db.target.clone(), dir.path().to_owned()),
        hook.clone(),
        Default::default(),
    )
    .await
    .unwrap();
    let seen = hook.seen.lock().unwrap().take();
    assert!(
        matches!(seen, Some(Err(BackupError::Locked { .. }))),
        "the prune ran during the backup: {seen:?}"
    );
    // Once the backup is done, the prune runs and keeps the new snapshot whole.
    let report = upkeep_backup::forget(&hook.options).unwrap();
    assert_eq!(report.keep, [second.snapshot]);
    let copy = TestDb::new(Engine::Sqlite).await;
    assert!(restore(dir.path(), &copy.target, |_| {}).await.verified);
}

/// A damaged manifest is listed as damaged, does not stop a policy's forget, blocks a prune
/// (its chunks cannot be told) until it is named and removed; the prune then also clears
/// what killed runs left in tmp/.
#[tokio::test]
async fn sqlite_a_damaged_snapshot_is_listed_and_can_be_forgotten() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let first = backup(&db.target, dir.path()).await;
    db.execute("INSERT INTO t VALUES (2, 'b');").await;
    let second = backup(&db.target, dir.path()).await;
    let path = dir
        .path()
        .join(format!("snapshots/{}.json", first.snapshot));
    std::fs::write(&path, b"{ not json").unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    std::fs::write(dir.path().join("tmp/12345-deadbeef"), b"half a chunk").unwrap();

    let list = upkeep_backup::list_snapshots(dir.path()).unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list[0].damaged.as_deref().unwrap().contains("not valid"),
        "{list:?}"
    );
    assert_eq!(list[1].damaged, None);
    assert_eq!(list[1].rows, 2);

    let policy = ForgetOptions {
        repo: dir.path().to_owned(),
        keep_last: 5,
        ..Default::default()
    };
    let kept = upkeep_backup::forget(&policy).unwrap();
    assert_eq!(kept.keep, vec![second.snapshot.clone()]);
    assert_eq!(kept.damaged.len(), 1);
    let prune = ForgetOptions {
        prune: true,
        ..policy.clone()
    };
    let err = upkeep_backup::forget(&prune).unwrap_err();
    assert!(
        err.to_string().contains(&first.snapshot) && err.to_string().contains("upkeep forget"),
        "{err}"
    );
    assert!(path.exists());

    let named = ForgetOptions {
        snapshots: vec![first.snapshot[..20].to_owned()],
        prune: true,
        ..Default::default()
    };
    let named = ForgetOptions {
        repo: dir.path().to_owned(),
        ..named
    };
    let removed = upkeep_backup::forget(&named).unwrap();
    assert_eq!(removed.remove, vec![first.snapshot.clone()]);
    assert_eq!(removed.keep, vec![second.snapshot.clone()]);
    assert_eq!(removed.pruned_tmp_files, 1);
    assert!(!path.exists());
    assert!(!dir.path().join("tmp/12345-deadbeef").exists());
    assert!(crate::verify(dir.path(), true).await.ok);
}
