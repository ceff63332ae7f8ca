//! `upkeep generate` makes the same rows in every engine, whatever the number of jobs.

use upkeep_core::Engine;
use upkeep_test_support::TestDb;

use crate::{stderr, upkeep};

async fn generate_and_checksum(db: &TestDb, jobs: &str) -> serde_json::Value {
    let url = db.target.secret_url().to_owned();
    let jobs = jobs.to_owned();
    tokio::task::spawn_blocking(move || {
        let g = upkeep(&["generate", &url, "--rows", "3000", "--jobs", &jobs, "-q"]);
        assert!(g.status.success(), "generate: {}", stderr(&g));
        let again = upkeep(&["generate", &url, "--rows", "3000", "-q"]);
        assert_eq!(
            again.status.code(),
            Some(2),
            "a second run without --replace refuses"
        );
        assert!(stderr(&again).contains("--replace"));
        let c = upkeep(&["checksum", &url, "--json", "--chunk-rows", "500"]);
        assert!(c.status.success(), "checksum: {}", stderr(&c));
        serde_json::from_slice::<serde_json::Value>(&c.stdout).unwrap()
    })
    .await
    .unwrap()
}

fn digests(report: &serde_json::Value) -> Vec<(String, String)> {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_owned(),
                t["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn pg_mysql_sqlite_generate_the_same_rows() {
    let sqlite = TestDb::new(Engine::Sqlite).await;
    let pg = TestDb::new(Engine::Postgres).await;
    let my = TestDb::new(Engine::Mysql).await;
    let a = digests(&generate_and_checksum(&sqlite, "1").await);
    let b = digests(&generate_and_checksum(&pg, "3").await);
    let c = digests(&generate_and_checksum(&my, "2").await);
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "SQLite and PostgreSQL");
    assert_eq!(a, c, "SQLite and MariaDB");
    assert!(a
        .iter()
        .any(|(t, d)| t == "order_lines" && d.starts_with("v1:3000:")));
}
