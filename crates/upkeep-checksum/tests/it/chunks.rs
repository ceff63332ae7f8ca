//! Chunking: any split adds up to the same table digest, for integer, composite and text keys,
//! and tables without a key are read whole.

use upkeep_core::{Digest, Engine};
use upkeep_test_support::TestDb;

use crate::checksum;

const SCHEMA_PG: &str = "
CREATE TABLE int_key (id bigint PRIMARY KEY, v text);
INSERT INTO int_key SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
CREATE TABLE composite_key (a int, b text, v int, PRIMARY KEY (a, b));
INSERT INTO composite_key SELECT g % 7, 'k' || g, g FROM generate_series(1, 3000) g;
CREATE TABLE \"Text Key\" (k varchar(40) PRIMARY KEY, v int);
INSERT INTO \"Text Key\" SELECT 'Ü' || md5(g::text), g FROM generate_series(1, 3000) g;
CREATE TABLE no_key (v int);
INSERT INTO no_key SELECT g % 10 FROM generate_series(1, 1000) g;
ANALYZE;
";

const SCHEMA_MYSQL: &str = "
SET SESSION max_recursive_iterations = 100000;
CREATE TABLE int_key (id bigint PRIMARY KEY, v text);
INSERT INTO int_key WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 5000) SELECT g, md5(g) FROM s;
CREATE TABLE composite_key (a int, b varchar(20), v int, PRIMARY KEY (a, b));
INSERT INTO composite_key WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 3000) SELECT g % 7, CONCAT('k', g), g FROM s;
CREATE TABLE `Text Key` (k varchar(40) PRIMARY KEY, v int);
INSERT INTO `Text Key` WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 3000) SELECT CONCAT('Ü', md5(g)), g FROM s;
CREATE TABLE no_key (v int);
INSERT INTO no_key WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 1000) SELECT g % 10 FROM s;
ANALYZE TABLE int_key, composite_key, `Text Key`, no_key;
";

async fn chunked_digests_add_up(engine: Engine, schema: &str) {
    let db = TestDb::new(engine).await;
    db.execute(schema).await;
    let whole = checksum(&db.target, |o| o.jobs = 1).await;
    let split = checksum(&db.target, |o| {
        o.jobs = 3;
        o.chunks = true;
        o.plan.chunk_rows = 400;
    })
    .await;
    assert_eq!(whole.tables.len(), 4);
    for t in &split.tables {
        let w = whole.tables.iter().find(|x| x.table == t.table).unwrap();
        assert_eq!(t.digest, w.digest, "{}", t.table);
        let chunks = t.chunks.as_ref().unwrap();
        let mut sum = Digest::default();
        chunks.iter().for_each(|c| sum.merge(&c.digest));
        assert_eq!(sum, t.digest, "chunk digests of {} add up", t.table);
        if t.table == "no_key" {
            assert_eq!(chunks.len(), 1);
            assert!(t.key.is_none());
        } else {
            assert!(
                chunks.len() >= 3,
                "{} split into {} chunks",
                t.table,
                chunks.len()
            );
            assert!(
                chunks.iter().all(|c| c.rows > 0),
                "{}: an empty chunk: {chunks:?}",
                t.table
            );
        }
    }
    assert!(
        split.warnings.iter().any(|w| w.contains("no_key")),
        "{:?}",
        split.warnings
    );
    let rows: u64 = split.tables.iter().map(|t| t.rows).sum();
    assert_eq!(rows, 5000 + 3000 + 3000 + 1000);
}

#[tokio::test]
async fn pg_chunked_digests_add_up() {
    chunked_digests_add_up(Engine::Postgres, SCHEMA_PG).await;
}

#[tokio::test]
async fn mysql_chunked_digests_add_up() {
    chunked_digests_add_up(Engine::Mysql, SCHEMA_MYSQL).await;
}

#[tokio::test]
async fn sqlite_rowid_tables_split_and_add_up() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 3000)
         INSERT INTO t SELECT g, hex(g) FROM s;",
    )
    .await;
    let whole = checksum(&db.target, |_| {}).await;
    let split = checksum(&db.target, |o| {
        o.chunks = true;
        o.plan.chunk_rows = 500;
    })
    .await;
    assert_eq!(whole.tables[0].digest, split.tables[0].digest);
    assert_eq!(split.tables[0].chunks.as_ref().unwrap().len(), 6);
    assert_eq!(split.jobs, 1, "SQLite reads in one transaction");
}

#[tokio::test]
async fn pg_table_filters_select_and_exclude() {
    let db = TestDb::new(Engine::Postgres).await;
    db.execute(SCHEMA_PG).await;
    let r = checksum(&db.target, |o| {
        o.include = vec!["*_key".into(), "Text*".into()];
        o.exclude = vec!["no_*".into()];
    })
    .await;
    let names: Vec<&str> = r.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(names, ["Text Key", "composite_key", "int_key"]);
}
