//! A transfer workload moves money between accounts during the backup: the restored database's
//! total must equal the invariant, which only a consistent snapshot across workers gives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use upkeep_core::Engine;
use upkeep_test_support::TestDb;

use crate::restore;

const ACCOUNTS: u64 = 20_000;

async fn transfers_during_backup(engine: Engine) {
    let db = TestDb::new(engine).await;
    let fill = match engine {
        Engine::Postgres => "CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);
             INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 20000) g;"
            .to_owned(),
        _ => "SET SESSION max_recursive_iterations = 100000;\nCREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);\n\
              INSERT INTO accounts WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 20000) SELECT g, 1000 FROM s;"
            .to_owned(),
    };
    db.execute(&fill).await;
    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let (stop, moved, target) = (stop.clone(), moved.clone(), db.target.clone());
        writers.push(tokio::spawn(async move {
            let mut conn = upkeep_db::Database::connect(&target, upkeep_db::OpenMode::ReadWrite)
                .await
                .unwrap();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                i += 7919;
                let (a, b) = (i % ACCOUNTS + 1, (i * 31) % ACCOUNTS + 1);
                if a == b {
                    continue;
                }
                // Low id first, so the two writers never deadlock.
                let (lo, hi) = (a.min(b), a.max(b));
                let sql = format!(
                    "BEGIN;\nUPDATE accounts SET balance = balance - 5 WHERE id = {lo};\n\
                     UPDATE accounts SET balance = balance + 5 WHERE id = {hi};\nCOMMIT;"
                );
                conn.execute_script(&sql).await.unwrap();
                moved.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let repo = tempfile::tempdir().unwrap();
    let before = moved.load(Ordering::Relaxed);
    let mut options = upkeep_backup::BackupOptions::new(db.target.clone(), repo.path().to_owned());
    options.jobs = 3;
    options.plan.chunk_rows = 1000;
    let report = upkeep_backup::backup(
        options,
        Arc::new(upkeep_core::NoProgress),
        Default::default(),
    )
    .await
    .unwrap();
    let during = moved.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(during > 0, "transfers ran during the backup");
    assert_eq!(report.total_rows, ACCOUNTS);
    let copy = TestDb::new(engine).await;
    restore(repo.path(), &copy.target, |_| {}).await;
    let mut conn = copy.connect().await;
    let total = conn
        .query_scalar("SELECT CAST(sum(balance) AS CHAR(30)) FROM accounts")
        .await;
    let total = match total {
        Ok(t) => t,
        Err(_) => conn
            .query_scalar("SELECT sum(balance)::text FROM accounts")
            .await
            .unwrap(),
    };
    assert_eq!(
        total.as_deref().map(str::trim),
        Some("20000000"),
        "{engine}: {during} transfers during the backup"
    );
}

#[tokio::test]
async fn pg_backup_under_concurrent_transfers_is_consistent() {
    transfers_during_backup(Engine::Postgres).await;
}

#[tokio::test]
async fn mysql_backup_under_concurrent_transfers_is_consistent() {
    transfers_during_backup(Engine::Mysql).await;
}
