//! PostgreSQL post-data: how a restore validates foreign keys.

use upkeep_core::Engine;
use upkeep_db::pg_post::{merge_hint, validate_foreign_key};
use upkeep_test_support::TestDb;

const SCHEMA: &str = r#"
CREATE TABLE parent (id bigint PRIMARY KEY);
CREATE TABLE indexed (id bigint PRIMARY KEY, parent_id bigint);
CREATE INDEX indexed_parent ON indexed (parent_id, id);
CREATE TABLE "Plain" (parent_id bigint);
CREATE TABLE partial (parent_id bigint);
CREATE INDEX partial_parent ON partial (parent_id) WHERE parent_id > 0;
INSERT INTO parent SELECT g FROM generate_series(1, 10) g;
INSERT INTO indexed SELECT g, g % 10 + 1 FROM generate_series(1, 100) g;
INSERT INTO "Plain" SELECT g % 10 + 1 FROM generate_series(1, 100) g;
INSERT INTO partial VALUES (1), (11);
ALTER TABLE indexed ADD CONSTRAINT "indexed_fk" FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;
ALTER TABLE "Plain" ADD CONSTRAINT "Plain fk" FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;
ALTER TABLE partial ADD CONSTRAINT partial_fk FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;
"#;

/// Hash joins are turned off only where both sides have an index to merge.
#[tokio::test]
async fn pg_validation_merges_indexed_keys_only() {
    let db = TestDb::new(Engine::Postgres).await;
    db.execute(SCHEMA).await;
    let mut conn = db.connect().await;
    for (table, name, merged) in [
        ("public.indexed", r#""indexed_fk""#, true),
        ("public.indexed", "indexed_fk", true),
        (r#"public."Plain""#, r#""Plain fk""#, false),
        ("public.partial", "partial_fk", false),
        ("public.indexed", r#""other_fk""#, false),
    ] {
        conn.execute_statement("BEGIN").await.unwrap();
        conn.execute_statement(&merge_hint(table, name))
            .await
            .unwrap();
        let setting = conn.query_scalar("SHOW enable_hashjoin").await.unwrap();
        conn.execute_statement("ROLLBACK").await.unwrap();
        let expected = if merged { "off" } else { "on" };
        assert_eq!(setting.as_deref(), Some(expected), "{table} {name}");
    }

    // The validation checks every row either way, and the setting ends with it.
    conn.execute_statement(&validate_foreign_key("public.indexed", r#""indexed_fk""#))
        .await
        .unwrap();
    conn.execute_statement(&validate_foreign_key(r#"public."Plain""#, r#""Plain fk""#))
        .await
        .unwrap();
    let valid = conn
        .query_scalar("SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f' AND convalidated")
        .await
        .unwrap();
    assert_eq!(valid.as_deref(), Some("Plain fk,indexed_fk"));
    let setting = conn.query_scalar("SHOW enable_hashjoin").await.unwrap();
    assert_eq!(setting.as_deref(), Some("on"));
    conn.close().await;

    // Row 11 has no parent: the validation fails and leaves the key not valid.
    let mut conn = db.connect().await;
    let err = conn
        .execute_statement(&validate_foreign_key("public.partial", "partial_fk"))
        .await
        .expect_err("a row without its parent");
    assert!(err.to_string().contains("partial_fk"), "{err}");
    conn.close().await;
}
