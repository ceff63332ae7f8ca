//! The kitchen-sink fixture holds the same logical data in every engine: its digests must be
//! the ones the Python reference computed (`fixtures/kitchen-sink/expected.json`).

use upkeep_core::Engine;
use upkeep_test_support::TestDb;

use crate::checksum;

async fn kitchen_sink_matches_reference(engine: Engine, jobs: usize) {
    let db = TestDb::new(engine).await;
    db.load_kitchen_sink().await;
    let report = checksum(&db.target, |o| {
        o.jobs = jobs;
        // Small chunks, so that the 2,000-row table is split and read by every worker.
        o.plan.chunk_rows = 300;
    })
    .await;
    let expected = TestDb::kitchen_sink_expected();
    assert_eq!(
        report.tables.len(),
        expected.len(),
        "tables: {:?}",
        report.tables.iter().map(|t| &t.table).collect::<Vec<_>>()
    );
    let mut mismatches = Vec::new();
    for (name, rows, digest) in &expected {
        let got = report
            .tables
            .iter()
            .find(|t| &t.table == name)
            .unwrap_or_else(|| panic!("no table {name}"));
        if got.rows != *rows || got.digest.to_string() != *digest {
            mismatches.push(format!("{name}: expected {digest}, got {}", got.digest));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{engine}:\n{}",
        mismatches.join("\n")
    );
}

#[tokio::test]
async fn pg_kitchen_sink_matches_reference() {
    kitchen_sink_matches_reference(Engine::Postgres, 3).await;
}

#[tokio::test]
async fn mysql_kitchen_sink_matches_reference() {
    kitchen_sink_matches_reference(Engine::Mysql, 3).await;
}

#[tokio::test]
async fn sqlite_kitchen_sink_matches_reference() {
    kitchen_sink_matches_reference(Engine::Sqlite, 2).await;
}
