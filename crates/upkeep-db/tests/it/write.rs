//! Writers under contention.

use std::time::Duration;

use upkeep_core::{BatchBuilder, Engine, TableName};
use upkeep_test_support::TestDb;

/// A MariaDB INSERT chosen as a deadlock's victim runs again and loads its rows.
#[tokio::test]
async fn mysql_insert_that_loses_a_deadlock_runs_again() {
    let db = TestDb::new(Engine::Mysql).await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, u int NOT NULL UNIQUE)")
        .await;
    let mut a = db.connect().await;
    let table = a
        .introspect()
        .await
        .unwrap()
        .table(&TableName::unqualified("t"))
        .unwrap()
        .clone();
    // A holds many rows, so that InnoDB picks the writer as the deadlock's victim.
    for sql in [
        "BEGIN",
        "INSERT INTO t (id, u) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000) \
         SELECT n + 10, n + 1000 FROM s",
        "INSERT INTO t VALUES (1, 100)",
    ] {
        a.execute_statement(sql).await.unwrap();
    }
    let mut rows = BatchBuilder::default();
    for (id, u) in [("2", "200"), ("3", "100")] {
        rows.push_value(id.as_bytes());
        rows.push_value(u.as_bytes());
        rows.end_row();
    }
    let batch = rows.take();
    let mut b = db.connect().await;
    // The writer inserts u = 200, then waits for A's u = 100.
    let writer = tokio::spawn(async move {
        let written = b.write_batch(&table, &batch).await;
        b.close().await;
        written
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A now waits for the writer's u = 200: a deadlock, which the writer loses. Its retry
    // then waits for A, which gives up.
    a.execute_statement("INSERT INTO t VALUES (4, 200)")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.execute_statement("ROLLBACK").await.unwrap();
    let written = writer.await.unwrap();
    assert_eq!(written.unwrap(), 2);
    let ids = a
        .query_scalar("SELECT GROUP_CONCAT(id ORDER BY id) FROM t")
        .await
        .unwrap();
    assert_eq!(ids.as_deref(), Some("2,3"));
    a.close().await;
}
