//! Schema fidelity: the schema zoo of each engine (`fixtures/schema-zoo/`) backed up and
//! restored into an empty database comes back as the engine's own tools see it (pg_dump with
//! owners and privileges, mariadb-dump with routines, triggers and events, sqlite3 `.schema`),
//! behaves the same (triggers, unique indexes, check options, rules), and the restore's own
//! schema proof says so; a change the proof must catch makes it fail, naming the object.

use std::process::Command;

use upkeep_core::{Engine, ObjectStatus};
use upkeep_test_support::{fixtures_dir, TestDb};

use crate::roundtrip::{pg_bin, scalar, unwrap_versioned_comment, url_parts};
use crate::{backup, restore};

fn zoo(file: &str) -> String {
    let path = fixtures_dir().join("schema-zoo").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The zoo's roles: cluster-wide, so created once and kept (concurrent tests race to
/// create them; losing the race is fine).
async fn pg_roles(db: &TestDb) {
    db.execute(
        "DO $$ BEGIN
           BEGIN CREATE ROLE zoo_owner; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
           BEGIN CREATE ROLE zoo_reader; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
         END $$;",
    )
    .await;
}

/// pg_dump --schema-only with owners and privileges, without its session lines.
fn pg_dump(db: &TestDb) -> String {
    let out = Command::new(pg_bin("pg_dump"))
        .args(["--schema-only", "-d", db.target.secret_url()])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("--") && !l.starts_with('\\') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `sql` and returns its error message, or "ok".
async fn outcome(db: &TestDb, sql: &str) -> String {
    let mut c = db.connect().await;
    let r = c.execute_script(sql).await;
    c.close().await;
    match r {
        Ok(()) => "ok".into(),
        Err(e) => {
            let e = e.to_string();
            // The message without the database's name, which differs.
            e.rsplit_once(": ").map_or(e.clone(), |(_, m)| m.to_owned())
        }
    }
}

#[tokio::test]
async fn pg_schema_zoo_round_trips_with_owners_privileges_and_behaviour() {
    let source = TestDb::new(Engine::Postgres).await;
    pg_roles(&source).await;
    source.execute(&zoo("postgres.sql")).await;
    let repo = tempfile::tempdir().unwrap();
    backup(&source.target, repo.path()).await;
    let copy = TestDb::new(Engine::Postgres).await;
    let restored = restore(repo.path(), &copy.target, |o| o.jobs = 2).await;
    assert!(restored.verified, "{:?}", restored.schema_problems());
    assert!(restored.schema.len() > 90, "{}", restored.schema.len());
    assert!(restored
        .schema
        .iter()
        .all(|c| c.status == ObjectStatus::Equal));

    // pg_dump sees the same schema: every object, owner, privilege and comment.
    assert_eq!(pg_dump(&source), pg_dump(&copy));

    // Behaviour: each probe gives the same outcome on both.
    for probe in [
        // The unique index on the partitioned table is attached and valid: a duplicate fails.
        "INSERT INTO readings (id, at, sensor, v) SELECT 99999, at, sensor, v FROM readings WHERE v IS NOT NULL LIMIT 1",
        // The row trigger, cloned onto the partitions, fills v.
        "INSERT INTO readings (id, at, sensor) VALUES (100000, '2025-07-01', 'z')",
        // WITH CASCADED CHECK OPTION refuses a row the view would not show.
        "INSERT INTO happy_customers (\"Full Name\", feeling) VALUES ('Sad Sam', 'sad')",
        // The rule logs a status change.
        "UPDATE \"Sales & Co\".\"Order\" SET status = 'shipped' WHERE id = 1",
        // The exclusion constraint refuses an overlapping order of the same customer.
        "INSERT INTO \"Sales & Co\".\"Order\" (customer_id, placed) VALUES (10, '[2025-01-02,2025-01-03)')",
        // The domain's check.
        "UPDATE customers SET tier = 0 WHERE id = 10",
    ] {
        assert_eq!(
            outcome(&source, probe).await,
            outcome(&copy, probe).await,
            "{probe}"
        );
    }
    for query in [
        "SELECT v::text FROM readings WHERE id = 100000",
        "SELECT count(*)::text FROM orders_log",
        "SELECT string_agg(sensor, ',') FROM loudest",
        "SELECT count(*)::text FROM countdown",
        "SELECT count(*)::text FROM customers_like('a%')",
        "SELECT relispopulated::text FROM pg_class WHERE relname = 'empty_summary'",
        "SELECT string_agg(sensor || '=' || n, ',' ORDER BY sensor) FROM sensor_counts",
        "SELECT last_value::text FROM invoice_no",
        "SELECT next_code('X')",
        "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'readings_v_uq'::regclass",
    ] {
        let (before, after) = (scalar(&source, query).await, scalar(&copy, query).await);
        assert!(before.is_some(), "{query} returns nothing");
        assert_eq!(before, after, "{query}");
    }

    // The proof catches what a restore got wrong: a function changed after the restore
    // is named.
    copy.execute(
        "CREATE OR REPLACE FUNCTION sum_sq_step(acc numeric, v numeric) RETURNS numeric \
         LANGUAGE sql IMMUTABLE AS $$ SELECT acc + v $$",
    )
    .await;
    let mut db = copy.connect().await;
    let found = db.schema_objects().await.unwrap();
    db.close().await;
    let repo_objects = upkeep_backup::Repository::open(repo.path())
        .unwrap()
        .load_manifest(&restored.snapshot)
        .unwrap()
        .objects;
    let all: Vec<&upkeep_core::SchemaObject> = repo_objects.iter().collect();
    let checks = upkeep_core::prove(&all, &found, upkeep_core::Attributes::default());
    // (The probes moved the sequences since the snapshot: their positions differ too.)
    let different: Vec<String> = checks
        .iter()
        .filter(|c| !c.status.is_equal() && c.key.kind != upkeep_core::ObjectKind::SequenceValue)
        .map(|c| c.key.to_string())
        .collect();
    assert_eq!(different, ["function public.sum_sq_step(numeric,numeric)"]);
}

/// Without owners and privileges the restore needs no roles, and the proof does not compare
/// them; objects are owned by the restoring user.
#[tokio::test]
async fn pg_restore_without_owners_or_privileges() {
    let source = TestDb::new(Engine::Postgres).await;
    pg_roles(&source).await;
    source.execute(&zoo("postgres.sql")).await;
    let repo = tempfile::tempdir().unwrap();
    backup(&source.target, repo.path()).await;
    let copy = TestDb::new(Engine::Postgres).await;
    let restored = restore(repo.path(), &copy.target, |o| {
        o.attributes = upkeep_core::Attributes {
            owners: false,
            privileges: false,
        };
    })
    .await;
    assert!(restored.verified, "{:?}", restored.schema_problems());
    assert_eq!(
        scalar(
            &copy,
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE relname = 'customers'"
        )
        .await
        .as_deref(),
        Some("postgres")
    );
    assert_eq!(
        scalar(
            &copy,
            "SELECT relacl::text FROM pg_class WHERE relname = 'customers'"
        )
        .await,
        None
    );
}

/// mariadb-dump with routines, triggers and events, definers kept; `AUTO_INCREMENT=` is
/// compared apart (restores set it from the data).
fn mariadb_dump(db: &TestDb) -> String {
    let (host, port, user, name) = url_parts(db.target.secret_url());
    let out = Command::new("mariadb-dump")
        .args([
            "--no-data",
            "--routines",
            "--triggers",
            "--events",
            "--skip-comments",
            "--skip-dump-date",
        ])
        .args(["-h", &host, "-P", &port, "-u", &user, &name])
        .output()
        .expect("mariadb-dump runs");
    assert!(
        out.status.success(),
        "mariadb-dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(unwrap_versioned_comment)
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
        // The database's own name and collation line differ between source and copy.
        .map(|l| l.replace(&name, "DB"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn mariadb_schema_zoo_round_trips_with_sql_modes_and_view_order() {
    let source = TestDb::new(Engine::Mysql).await;
    source.execute(&zoo("mariadb.sql")).await;
    let repo = tempfile::tempdir().unwrap();
    backup(&source.target, repo.path()).await;
    let copy = TestDb::new(Engine::Mysql).await;
    let restored = restore(repo.path(), &copy.target, |o| o.jobs = 2).await;
    assert!(restored.verified, "{:?}", restored.schema_problems());
    assert_eq!(mariadb_dump(&source), mariadb_dump(&copy));
    // The trigger written under PIPES_AS_CONCAT concatenates, the one under the default mode
    // ORs; the restored ones do the same.
    for probe in [
        "INSERT INTO `Order Lines` (qty, note) VALUES (2, 'x')",
        "INSERT INTO pipes (a, b) VALUES ('1', '0')",
    ] {
        assert_eq!(
            outcome(&source, probe).await,
            outcome(&copy, probe).await,
            "{probe}"
        );
    }
    for query in [
        "SELECT GROUP_CONCAT(joined ORDER BY id) FROM pipes",
        "SELECT GROUP_CONCAT(label ORDER BY id) FROM `Order Lines`",
        "SELECT COUNT(*) FROM a_top_view",
        "SELECT shout('hi')",
        "SELECT next_not_cached_value FROM ticket_seq",
        "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'Order Lines'",
    ] {
        let (before, after) = (scalar(&source, query).await, scalar(&copy, query).await);
        assert!(before.is_some(), "{query} returns nothing");
        assert_eq!(before, after, "{query}");
    }
}

/// sqlite3's own `.schema`, and the AUTOINCREMENT counters.
fn sqlite_schema(db: &TestDb) -> String {
    let out = Command::new("sqlite3")
        .arg(db.target.sqlite_path().unwrap())
        .arg(".schema")
        .output()
        .expect("sqlite3 runs (scripts/test installs it)");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn sqlite_schema_zoo_round_trips() {
    let source = TestDb::new(Engine::Sqlite).await;
    source.execute(&zoo("sqlite.sql")).await;
    let repo = tempfile::tempdir().unwrap();
    backup(&source.target, repo.path()).await;
    let copy = TestDb::new(Engine::Sqlite).await;
    let restored = restore(repo.path(), &copy.target, |_| {}).await;
    assert!(restored.verified, "{:?}", restored.schema_problems());
    assert_eq!(sqlite_schema(&source), sqlite_schema(&copy));
    for probe in [
        "INSERT INTO strict_things (id, n) VALUES (10, 'not a number')",
        "INSERT INTO notes (body) VALUES ('fresh')",
    ] {
        assert_eq!(
            outcome(&source, probe).await,
            outcome(&copy, probe).await,
            "{probe}"
        );
    }
    for query in [
        "SELECT group_concat(id || ':' || body || ':' || len, ',') FROM notes",
        "SELECT group_concat(n, ',') FROM audit",
        "SELECT seq FROM sqlite_sequence WHERE name = 'notes'",
        "SELECT count(*) FROM long_notes",
    ] {
        let (before, after) = (scalar(&source, query).await, scalar(&copy, query).await);
        assert!(before.is_some(), "{query} returns nothing");
        assert_eq!(before, after, "{query}");
    }
}

/// `--data-only` into an existing schema: rows load whatever the foreign keys say (two jobs,
/// any order), sequences are set (the next insert does not collide), and the proof holds; a
/// target table missing a column is named.
#[tokio::test]
async fn pg_data_only_restore_loads_a_foreign_key_graph_and_sets_sequences() {
    let source = TestDb::new(Engine::Postgres).await;
    source
        .execute(
            "CREATE TABLE parents (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text);
             CREATE TABLE kids (id serial PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parents (id),
                                buddy int REFERENCES kids (id));
             INSERT INTO parents (name) SELECT 'p' || g FROM generate_series(1, 3000) g;
             INSERT INTO kids (parent_id) SELECT (g % 3000) + 1 FROM generate_series(1, 6000) g;
             UPDATE kids SET buddy = id - 1 WHERE id > 1;",
        )
        .await;
    let repo = tempfile::tempdir().unwrap();
    backup(&source.target, repo.path()).await;
    let copy = TestDb::new(Engine::Postgres).await;
    restore(repo.path(), &copy.target, |o| {
        o.mode = upkeep_backup::SchemaMode::SchemaOnly;
    })
    .await;
    let restored = restore(repo.path(), &copy.target, |o| {
        o.mode = upkeep_backup::SchemaMode::DataOnly;
        o.jobs = 2;
    })
    .await;
    assert!(restored.verified, "{:?}", restored.schema_problems());
    // The positions were proven too.
    assert!(restored
        .schema
        .iter()
        .any(|c| c.key.kind == upkeep_core::ObjectKind::SequenceValue));
    copy.execute(
        "INSERT INTO parents (name) VALUES ('new'); INSERT INTO kids (parent_id) VALUES (1);",
    )
    .await;

    // A target table without one of the snapshot's columns: named, exit 5.
    let other = TestDb::new(Engine::Postgres).await;
    other
        .execute("CREATE TABLE parents (id bigint PRIMARY KEY); CREATE TABLE kids (id int PRIMARY KEY, parent_id bigint, buddy int);")
        .await;
    let mut options =
        upkeep_backup::RestoreOptions::new(repo.path().to_owned(), other.target.clone());
    options.mode = upkeep_backup::SchemaMode::DataOnly;
    let err = upkeep_backup::restore(options, Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, upkeep_backup::BackupError::MissingColumn { .. })
            && err.to_string().contains("table parents")
            && err.to_string().contains("no column name"),
        "{err}"
    );
    assert_eq!(err.kind(), upkeep_db::ErrorKind::NotFound);
}

/// `--exclude` names views as well as tables: the view and what needs it stay out.
#[tokio::test]
async fn mariadb_exclude_skips_a_view_and_what_reads_it() {
    let source = TestDb::new(Engine::Mysql).await;
    source.execute(&zoo("mariadb.sql")).await;
    let repo = tempfile::tempdir().unwrap();
    crate::backup_with(&source.target, repo.path(), |o| {
        o.exclude = vec!["m_mid_view".into()];
    })
    .await;
    let copy = TestDb::new(Engine::Mysql).await;
    let restored = restore(repo.path(), &copy.target, |_| {}).await;
    assert!(restored.verified, "{:?}", restored.schema_problems());
    let views: Vec<String> = restored
        .schema
        .iter()
        .filter(|c| c.key.kind == upkeep_core::ObjectKind::View)
        .map(|c| c.key.name.clone())
        .collect();
    assert_eq!(views, ["z_base_view"]);
}
