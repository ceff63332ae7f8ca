//! A server that goes away in the middle of a read gives a named error, not a hang or a panic.

use std::sync::Arc;

use upkeep_core::{Batch, Engine, NoProgress};
use upkeep_db::{BatchSink, DbError, PlanOptions, ScanError, ScanOptions, ScanTask, Snapshot};
use upkeep_test_support::TestDb;

/// Terminates the reading sessions when it sees its first batch.
struct KillOnFirstBatch {
    admin: Option<upkeep_db::Target>,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl BatchSink for KillOnFirstBatch {
    type Error = Never;

    fn batch(&mut self, _: &ScanTask, _: Batch) -> Result<(), Never> {
        if let Some(admin) = self.admin.take() {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let mut db =
                        upkeep_db::Database::connect(&admin, upkeep_db::OpenMode::ReadWrite)
                            .await
                            .unwrap();
                    db.execute_script(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = 'upkeep' AND pid <> pg_backend_pid() \
                         AND datname = current_database()",
                    )
                    .await
                    .unwrap();
                    db.close().await;
                });
            })
            .join()
            .unwrap();
        }
        Ok(())
    }

    fn chunk_done(&mut self, _: &ScanTask, _: u64, _: u64) -> Result<(), Never> {
        Ok(())
    }
}

#[tokio::test]
async fn pg_connection_lost_mid_read_is_named() {
    let db = TestDb::new(Engine::Postgres).await;
    db.execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text);
         INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g;",
    )
    .await;
    let mut snapshot = Snapshot::open(&db.target, 1).await.unwrap();
    let table = snapshot.schema().tables[0].clone();
    let ranges = snapshot
        .plan(&table, &PlanOptions::default())
        .await
        .unwrap();
    let tasks = ranges
        .into_iter()
        .enumerate()
        .map(|(i, range)| ScanTask::new(0, i, range))
        .collect();
    let result = upkeep_db::scan(
        &mut snapshot,
        Arc::new(vec![table]),
        tasks,
        vec![KillOnFirstBatch {
            admin: Some(db.target.clone()),
        }],
        ScanOptions {
            batch_rows: 1000,
            ..ScanOptions::default()
        },
        Arc::new(NoProgress),
        Default::default(),
    )
    .await;
    snapshot.close().await;
    match result {
        Err(ScanError::Db(e @ (DbError::ConnectionLost { .. } | DbError::Query { .. }))) => {
            let msg = e.to_string();
            assert!(msg.contains("reading table t"), "{msg}");
            assert!(msg.contains("terminat") || msg.contains("lost"), "{msg}");
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("the read survived its connection being terminated"),
    }
}
