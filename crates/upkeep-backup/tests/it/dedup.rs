//! A second backup after appending 1 % of rows and updating rows within 1 % of the key range
//! stores at most 5 % of the first one's bytes.

use upkeep_core::Engine;
use upkeep_test_support::TestDb;

use crate::backup;

async fn dedup(engine: Engine) {
    let db = TestDb::new(engine).await;
    let url = db.target.clone();
    fill_table(&db).await;
    let repo = tempfile::tempdir().unwrap();
    let first = backup(&url, repo.path()).await;
    assert!(first.bytes_stored > 0);
    // Unchanged data: almost nothing new.
    let again = backup(&url, repo.path()).await;
    assert_eq!(
        again.chunks_new, 0,
        "an unchanged database stores nothing new"
    );
    // 1 % appended, rows within 1 % of the key range updated.
    let (append, update) = match engine {
        Engine::Postgres => (
            "INSERT INTO t SELECT g, md5(g::text) || repeat('x', 100) FROM generate_series(200001, 202000) g",
            "UPDATE t SET v = 'changed ' || id WHERE id BETWEEN 100000 AND 102000",
        ),
        _ => (
            "WITH RECURSIVE s(g) AS (SELECT 200001 UNION ALL SELECT g + 1 FROM s WHERE g < 202000) \
             INSERT INTO t SELECT g, hex(g) || printf('%.100c', 'x') FROM s",
            "UPDATE t SET v = 'changed ' || id WHERE id BETWEEN 100000 AND 102000",
        ),
    };
    db.execute(&format!("{append};\n{update};")).await;
    let third = backup(&url, repo.path()).await;
    let ratio = third.bytes_stored as f64 / first.bytes_stored as f64;
    assert!(
        ratio <= 0.05,
        "{engine}: the changed backup stored {:.1} % of the first",
        ratio * 100.0
    );
    assert_eq!(third.total_rows, 202_000);
    // The changes were stored: the third snapshot restores to the changed table.
    assert!(third.chunks_new > 0 && third.bytes_stored > 0, "{engine}");
    let copy = TestDb::new(engine).await;
    let restored = crate::restore(repo.path(), &copy.target, |o| {
        o.snapshot.clone_from(&third.snapshot);
    })
    .await;
    assert!(restored.verified, "{engine}");
    assert_eq!(restored.total_rows, 202_000, "{engine}");
}

/// 200,000 rows of ~140 bytes.
async fn fill_table(db: &TestDb) {
    let sql = match db.engine() {
        Engine::Postgres => {
            "CREATE TABLE t (id bigint PRIMARY KEY, v text);
             INSERT INTO t SELECT g, md5(g::text) || repeat('x', 100) FROM generate_series(1, 200000) g;
             ANALYZE t;"
        }
        _ => {
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 200000)
             INSERT INTO t SELECT g, hex(g) || printf('%.100c', 'x') FROM s;"
        }
    };
    db.execute(sql).await;
}

#[tokio::test]
async fn pg_changed_backup_stores_little() {
    dedup(Engine::Postgres).await;
}

#[tokio::test]
async fn sqlite_changed_backup_stores_little() {
    dedup(Engine::Sqlite).await;
}
