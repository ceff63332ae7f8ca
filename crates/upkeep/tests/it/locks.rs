//! Repository locks across machines: a backup running in another PID namespace (another
//! container on the same volume) holds off a prune from here, and a backup whose lock was
//! taken away writes no snapshot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use upkeep_core::Engine;
use upkeep_db::Database;
use upkeep_test_support::TestDb;

use crate::{stderr, upkeep};

fn lock_files(repo: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(repo.join("locks"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

fn snapshot_count(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("snapshots")).map_or(0, Iterator::count)
}

/// A table, a first backup of it, and a session that holds the table locked so that the
/// next backup waits on its rows.
async fn blocked_table(repo: &Path) -> (TestDb, Database) {
    let db = TestDb::new(Engine::Postgres).await;
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;",
    )
    .await;
    let out = upkeep(&[
        "backup",
        db.target.secret_url(),
        "--repo",
        repo.to_str().unwrap(),
        "-q",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    db.execute("UPDATE t SET v = 'new' WHERE id < 5000").await;
    let mut blocker = db.connect().await;
    blocker
        .execute_statement("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    (db, blocker)
}

/// Starts `upkeep backup` (in `prefix`, a command that wraps it) and waits for its lock.
fn start_backup(prefix: &[&str], url: &str, repo: &Path) -> (Child, PathBuf) {
    let upkeep = env!("CARGO_BIN_EXE_upkeep");
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.extend([
        upkeep,
        "backup",
        url,
        "--repo",
        repo.to_str().unwrap(),
        "-q",
    ]);
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .env("UPKEEP_LOCK_REFRESH_SECONDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(lock) = lock_files(repo).pop() {
            return (child, lock);
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before it took its lock"
        );
        assert!(Instant::now() < deadline, "the backup took no lock");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[tokio::test]
async fn pg_a_backup_in_another_pid_namespace_holds_off_a_prune() {
    let repo = tempfile::tempdir().unwrap();
    let (db, mut blocker) = blocked_table(repo.path()).await;
    let mut unshare = vec!["unshare"];
    if !is_root() {
        unshare.extend(["--user", "--map-root-user"]);
    }
    unshare.extend(["--pid", "--fork", "--mount-proc"]);
    let (url, path) = (db.target.secret_url().to_owned(), repo.path().to_owned());
    let (child, lock) = tokio::task::spawn_blocking(move || start_backup(&unshare, &url, &path))
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    let here = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert_ne!(
        info["pid_namespace"].as_str(),
        Some(here.to_str().unwrap()),
        "the backup runs in a PID namespace of its own"
    );

    // Its process id means nothing here: the lock stands, refreshed, and the prune waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let path = repo.path().to_owned();
    let prune = tokio::task::spawn_blocking(move || {
        upkeep(&[
            "forget",
            "--repo",
            path.to_str().unwrap(),
            "--keep-last",
            "1",
            "--prune",
        ])
    })
    .await
    .unwrap();
    assert!(!prune.status.success());
    assert!(
        stderr(&prune).contains("is locked by a shared lock"),
        "{}",
        stderr(&prune)
    );
    assert!(lock.exists(), "the live lock was kept");
    let refreshed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    assert_ne!(
        refreshed["refreshed"], info["refreshed"],
        "the lock is refreshed"
    );

    blocker.execute_statement("COMMIT").await.unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(lock_files(repo.path()).is_empty());
    let path = repo.path().to_str().unwrap().to_owned();
    let prune = upkeep(&["forget", "--repo", &path, "--keep-last", "1", "--prune"]);
    assert!(prune.status.success(), "{}", stderr(&prune));
    let verify = upkeep(&["verify", "--repo", &path, "--read-data"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[tokio::test]
async fn pg_a_backup_whose_lock_is_taken_away_writes_no_snapshot() {
    let repo = tempfile::tempdir().unwrap();
    let (db, mut blocker) = blocked_table(repo.path()).await;
    let (url, path) = (db.target.secret_url().to_owned(), repo.path().to_owned());
    let (child, lock) = tokio::task::spawn_blocking(move || start_backup(&[], &url, &path))
        .await
        .unwrap();
    // Another run judged it stale and removed it.
    std::fs::remove_file(&lock).unwrap();
    blocker.execute_statement("COMMIT").await.unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was removed by another run"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot_count(repo.path()), 1, "no second snapshot");
}
