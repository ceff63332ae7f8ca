//! Fault drills: a backup never keeps a parent's rows that the source no longer holds. Each
//! test sets a throwaway server of its own back, crashes it or makes it forget, then checks
//! that the next backup reads what changed: its digests equal a forced full read's, and
//! differ from the parent's.

use std::path::Path;

use upkeep_backup::BackupReport;
use upkeep_core::Engine;
use upkeep_db::{Database, OpenMode, Target};
use upkeep_test_support::{OwnMyServer, OwnPgServer, TestDb};

use crate::backup_with;

fn digests(r: &BackupReport) -> Vec<(String, String)> {
    r.tables
        .iter()
        .map(|t| (t.table.clone(), t.digest.to_string()))
        .collect()
}

async fn run(target: &Target, sql: &str) {
    let mut db = Database::connect(target, OpenMode::ReadWrite)
        .await
        .unwrap_or_else(|e| panic!("connecting to {target}: {e}"));
    db.execute_script(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    db.close().await;
}

async fn scalar(target: &Target, sql: &str) -> Option<String> {
    let mut db = Database::connect(target, OpenMode::ReadWrite)
        .await
        .unwrap();
    let v = db.query_scalar(sql).await.unwrap();
    db.close().await;
    v
}

fn small(o: &mut upkeep_backup::BackupOptions) {
    o.plan.chunk_rows = 2000;
    o.jobs = 1;
}

/// A backup that reads everything: what the source holds.
async fn forced(target: &Target, repo: &Path) -> BackupReport {
    let r = backup_with(target, repo, |o| {
        small(o);
        o.force = true;
    })
    .await;
    assert_eq!(r.ranges_unchanged, 0);
    r
}

/// Each range's change fingerprint without the identity it was taken under:
/// `rows/sum of hashtidextended(ctid, xmin)`.
fn bare_fingerprints(repo: &Path, snapshot: &str) -> Vec<String> {
    let m = upkeep_backup::Repository::open(repo)
        .unwrap()
        .load_manifest(snapshot)
        .unwrap();
    m.tables
        .iter()
        .flat_map(|t| &t.segments)
        .map(|s| {
            let mut parts = s.fingerprint.rsplitn(3, '/');
            let (sum, rows) = (parts.next().unwrap(), parts.next().unwrap());
            format!("{rows}/{sum}")
        })
        .collect()
}

const PG_TABLE: &str = "CREATE TABLE t (id int PRIMARY KEY, v text);
     INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g;
     CHECKPOINT;";

/// The data directory is copied while the server is down, the server runs on and changes a
/// row, a backup takes it, then the copy is put back: the same change made again writes the
/// same (ctid, xmin), so the ranges' fingerprints cannot tell the histories apart. The
/// restart can.
#[tokio::test]
async fn pg_cluster_set_back_by_a_data_directory_copy_is_read_again() {
    let mut server = OwnPgServer::start();
    let target = Target::parse(&server.url, None).unwrap();
    run(&target, PG_TABLE).await;
    let copy = tempfile::tempdir().unwrap();
    server.stop_clean();
    server.copy_data_to(&copy.path().join("data"));
    server.launch();

    run(&target, "UPDATE t SET v = 'first history' WHERE id = 7").await;
    let repo = tempfile::tempdir().unwrap();
    let parent = backup_with(&target, repo.path(), small).await;

    server.stop_clean();
    server.put_back_data(&copy.path().join("data"));
    server.launch();
    run(&target, "UPDATE t SET v = 'other history' WHERE id = 7").await;

    let next = backup_with(&target, repo.path(), small).await;
    // The drill is real: every range's own fingerprint is the parent's.
    assert_eq!(
        bare_fingerprints(repo.path(), &next.snapshot),
        bare_fingerprints(repo.path(), &parent.snapshot),
        "the set-back history writes the same row versions"
    );
    assert_eq!(next.ranges_unchanged, 0, "nothing is taken from the parent");
    let reason = next.full_read_reason.clone().unwrap_or_default();
    assert!(reason.contains("restarted"), "{reason}");
    let truth = forced(&target, repo.path()).await;
    assert_eq!(digests(&next), digests(&truth));
    assert_ne!(digests(&next), digests(&parent));
    assert_eq!(
        scalar(&target, "SELECT v FROM t WHERE id = 7")
            .await
            .as_deref(),
        Some("other history")
    );

    // A clean restart alone also ends the trust: the next backup reads everything once, and
    // the one after takes its ranges again.
    server.restart();
    let after_restart = backup_with(&target, repo.path(), small).await;
    assert_eq!(after_restart.ranges_unchanged, 0);
    let again = backup_with(&target, repo.path(), small).await;
    assert_eq!(again.ranges_unchanged, again.ranges_total);
    assert_eq!(digests(&again), digests(&truth));
}

/// With `synchronous_commit = off`, a commit that a backup has read is lost when a backend
/// crashes before the WAL writer flushes it: the postmaster does not restart, it runs crash
/// recovery, and hands out the lost transaction's id again.
#[tokio::test]
async fn pg_commits_lost_in_a_crash_recovery_are_read_again() {
    // The WAL writer wakes every 10 s: a commit made just before a crash is usually lost.
    let server = OwnPgServer::start_with(&["synchronous_commit=off", "wal_writer_delay=10000"]);
    let target = Target::parse(&server.url, None).unwrap();
    // Room on every page: the update stays on its page (a new page would survive the crash,
    // since extending a file is not undone, and move the row version elsewhere).
    run(
        &target,
        &PG_TABLE.replace("v text)", "v text) WITH (fillfactor = 50)"),
    )
    .await;
    let repo = tempfile::tempdir().unwrap();
    let mut attempts = 0;
    let parent = loop {
        attempts += 1;
        assert!(attempts <= 5, "no commit was lost in {attempts} crashes");
        run(&target, "UPDATE t SET v = 'lost' WHERE id = 7").await;
        let parent = backup_with(&target, repo.path(), small).await;
        // Crash one backend: every session is cut and the server recovers from its WAL.
        let mut victim = Database::connect(&target, OpenMode::ReadWrite)
            .await
            .unwrap();
        let pid = victim
            .query_scalar("SELECT pg_backend_pid()::text")
            .await
            .unwrap()
            .unwrap();
        let ready = server.ready_count();
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap();
        server.wait_recovered(ready);
        drop(victim);
        if scalar(&target, "SELECT v FROM t WHERE id = 7")
            .await
            .as_deref()
            != Some("lost")
        {
            break parent;
        }
        // The WAL writer flushed the commit in time: nothing was lost; again.
        run(&target, "UPDATE t SET v = 'v7' WHERE id = 7; CHECKPOINT;").await;
    };
    run(&target, "UPDATE t SET v = 'after the crash' WHERE id = 7").await;
    let next = backup_with(&target, repo.path(), small).await;
    assert_eq!(
        bare_fingerprints(repo.path(), &next.snapshot),
        bare_fingerprints(repo.path(), &parent.snapshot),
        "the recovered server writes the same row versions"
    );
    assert_eq!(next.ranges_unchanged, 0, "nothing is taken from the parent");
    let truth = forced(&target, repo.path()).await;
    assert_eq!(digests(&next), digests(&truth));
    assert_ne!(digests(&next), digests(&parent));
}

/// Creates and opens more InnoDB tables than the table definition cache holds, closes them,
/// and waits until InnoDB has evicted `table` and forgotten its stamp; then drops them, so
/// that the server holds few tables again.
async fn evict(target: &Target, table: &str) {
    let mut sql = String::new();
    for i in 0..450 {
        sql.push_str(&format!(
            "CREATE TABLE evict_{i} (id int PRIMARY KEY) ENGINE=InnoDB;\nSELECT * FROM evict_{i};\n"
        ));
    }
    run(target, &sql).await;
    let stamp = format!(
        "SELECT UPDATE_TIME FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"
    );
    // Reading the stamp opens the table, and an open table is not evicted: close every
    // table, give InnoDB's master thread time to evict, then look.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        run(target, "FLUSH TABLES").await;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        if scalar(target, &stamp).await.is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "InnoDB did not evict {table}"
        );
    }
    let drop: String = (0..450)
        .map(|i| format!("DROP TABLE evict_{i};\n"))
        .collect();
    run(target, &drop).await;
}

/// Waits past the next second: a table stamped in the second a backup starts, or the one
/// before, is read, not trusted.
async fn next_second() {
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
}

/// A table unstamped at the parent (the server restarted), then changed, then evicted from
/// InnoDB's dictionary, is unstamped again with the same id: only a stamp is trusted.
#[tokio::test]
async fn mariadb_a_change_whose_stamp_was_evicted_is_read() {
    let server = OwnMyServer::start_with(&["--table-definition-cache=400"]);
    let mut server = server;
    let admin = Target::parse(&server.url, None).unwrap();
    run(&admin, "CREATE DATABASE shop").await;
    let target = admin.with_database("shop").unwrap();
    run(
        &target,
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(20)) ENGINE=InnoDB;
         INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_3000;
         CREATE TABLE s (id int PRIMARY KEY, v int) ENGINE=InnoDB;",
    )
    .await;
    server.restart();
    // s is stamped after the restart; t is not.
    run(&target, "INSERT INTO s SELECT seq, seq FROM seq_1_to_500").await;
    next_second().await;
    let repo = tempfile::tempdir().unwrap();
    let parent = backup_with(&target, repo.path(), small).await;
    assert_eq!(parent.total_rows, 3500);

    run(&target, "UPDATE t SET v = 'changed' WHERE id = 7").await;
    next_second().await;
    evict(&target, "t").await;

    let next = backup_with(&target, repo.path(), small).await;
    let truth = forced(&target, repo.path()).await;
    assert_eq!(digests(&next), digests(&truth), "t's change is in");
    assert_ne!(digests(&next), digests(&parent));
    // s, stamped and untouched, still comes from the parent (unless it was evicted too).
    let s_stamped = scalar(
        &target,
        "SELECT UPDATE_TIME IS NOT NULL FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 's'",
    )
    .await;
    if s_stamped.as_deref() == Some("1") {
        assert_eq!(next.rows_unchanged, 500);
    } else {
        assert_eq!(next.rows_unchanged, 0);
    }
}

/// Tables whose names differ only in case or in InnoDB's filename encoding, and databases
/// whose names differ only in case, each keep their own table id: a TRUNCATE (a new id, the
/// same stamp) of either one of a pair is read.
#[tokio::test]
async fn mariadb_tables_are_matched_to_innodb_by_exact_name() {
    let db = TestDb::new(Engine::Mysql).await;
    let name = db.target.database().unwrap().to_owned();
    let twin = name.to_uppercase();
    assert_ne!(twin, name);
    let admin = Target::parse(&upkeep_test_support::server_url(Engine::Mysql), None).unwrap();
    run(&admin, &format!("DROP DATABASE IF EXISTS `{twin}`")).await;
    run(&admin, &format!("CREATE DATABASE `{twin}`")).await;
    let twin_target = admin.with_database(&twin).unwrap();
    let tables = ["Foo", "foo", "a b", "a@0020b", "t"];
    let fill = |tables: &[&str]| -> String {
        tables
            .iter()
            .map(|t| format!("INSERT INTO `{t}` SELECT seq FROM seq_1_to_100;\n"))
            .collect()
    };
    let create: String = tables
        .iter()
        .map(|t| format!("CREATE TABLE `{t}` (id int PRIMARY KEY) ENGINE=InnoDB;\n"))
        .collect();
    run(&db.target, &format!("{create}{}", fill(&tables))).await;
    run(&twin_target, &format!("{create}{}", fill(&tables))).await;
    next_second().await;
    let repo = tempfile::tempdir().unwrap();
    let mut last = backup_with(&db.target, repo.path(), small).await;
    // Each half of each pair, in turn.
    for half in [["foo", "a b", "t"], ["Foo", "a@0020b", "t"]] {
        let truncate: String = half.iter().map(|t| format!("TRUNCATE `{t}`;\n")).collect();
        run(&db.target, &truncate).await;
        let next = backup_with(&db.target, repo.path(), small).await;
        let truth = forced(&db.target, repo.path()).await;
        assert_eq!(digests(&next), digests(&truth), "after truncating {half:?}");
        assert_eq!(next.total_rows, 200);
        run(&db.target, &fill(&half)).await;
        next_second().await;
        last = backup_with(&db.target, repo.path(), small).await;
        assert_eq!(last.total_rows, 500);
    }
    // The untouched tables still come from the parent.
    let again = backup_with(&db.target, repo.path(), small).await;
    assert_eq!(again.rows_unchanged, 500, "{again:?}");
    assert_eq!(digests(&again), digests(&last));
    run(&admin, &format!("DROP DATABASE `{twin}`")).await;
}

/// `verify --against` right after a backup: rows changed since are told apart from a
/// snapshot whose rows the change fingerprints vouch for but which differ (here forged by
/// swapping two ranges' digests, which keeps the manifest's sums).
async fn verify_against_tells_changes_from_stale_ranges(engine: Engine, fill: &str, change: &str) {
    let db = TestDb::new(engine).await;
    db.execute(fill).await;
    next_second().await;
    let repo = tempfile::tempdir().unwrap();
    let snap = backup_with(&db.target, repo.path(), small).await;
    let verify = |against: Target| upkeep_backup::VerifyOptions {
        repo: repo.path().to_owned(),
        snapshots: vec![snap.snapshot.clone()],
        read_data: false,
        against: Some(against),
        jobs: 2,
    };
    let same = upkeep_backup::verify(verify(db.target.clone()), Default::default())
        .await
        .unwrap();
    assert!(
        same.ok && same.snapshots[0].changed_since.is_empty(),
        "{same:?}"
    );

    db.execute(change).await;
    let changed = upkeep_backup::verify(verify(db.target.clone()), Default::default())
        .await
        .unwrap();
    assert!(changed.ok, "{changed:?}");
    assert!(
        !changed.snapshots[0].changed_since.is_empty(),
        "{changed:?}"
    );

    // Two ranges of the untouched table swap digests.
    let path = repo
        .path()
        .join(format!("snapshots/{}.json", snap.snapshot));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let segments = m["tables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["name"]["name"] == "quiet")
        .unwrap()["segments"]
        .as_array_mut()
        .unwrap();
    let (a, b) = (segments[0]["digest"].clone(), segments[1]["digest"].clone());
    assert_ne!(a, b);
    segments[0]["digest"] = b;
    segments[1]["digest"] = a;
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let stale = upkeep_backup::verify(verify(db.target.clone()), Default::default())
        .await
        .unwrap();
    assert!(!stale.ok);
    let problems = stale.snapshots[0].problems.join("\n");
    assert!(
        problems.contains("quiet") && problems.contains("stale"),
        "{problems}"
    );
    assert_eq!(stale.snapshots[0].problems.len(), 2, "{problems}");
}

#[tokio::test]
async fn pg_verify_against_tells_changes_since_from_a_stale_snapshot() {
    verify_against_tells_changes_from_stale_ranges(
        Engine::Postgres,
        "CREATE TABLE quiet (id int PRIMARY KEY, v text);
         INSERT INTO quiet SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
         CREATE TABLE busy (id int PRIMARY KEY, v text);
         INSERT INTO busy SELECT g, md5(g::text) FROM generate_series(1, 5000) g;",
        "UPDATE busy SET v = 'new' WHERE id = 4000",
    )
    .await;
}

#[tokio::test]
async fn mariadb_verify_against_tells_changes_since_from_a_stale_snapshot() {
    verify_against_tells_changes_from_stale_ranges(
        Engine::Mysql,
        "CREATE TABLE quiet (id int PRIMARY KEY, v varchar(40)) ENGINE=InnoDB;
         INSERT INTO quiet SELECT seq, MD5(seq) FROM seq_1_to_5000;
         CREATE TABLE busy (id int PRIMARY KEY, v varchar(40)) ENGINE=InnoDB;
         INSERT INTO busy SELECT seq, MD5(seq) FROM seq_1_to_5000;",
        "UPDATE busy SET v = 'new' WHERE id = 4000",
    )
    .await;
}
