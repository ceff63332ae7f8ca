//! backup → restore into an empty database → digests equal and the engine's own schema dump
//! equal.

use std::process::Command;

use upkeep_core::Engine;
use upkeep_test_support::TestDb;

use crate::{backup, restore, verify};

pub(crate) fn pg_bin(name: &str) -> String {
    let out = Command::new("pg_config").arg("--bindir").output();
    if let Ok(o) = out {
        let dir = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL client binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("pg_dump is installed")
        .display()
        .to_string()
}

/// The engine's own schema dump, with what legitimately differs between two databases removed.
fn schema_dump(db: &TestDb) -> String {
    let target = &db.target;
    let text = match db.engine() {
        Engine::Postgres => {
            let out = Command::new(pg_bin("pg_dump"))
                .args([
                    "--schema-only",
                    "--no-owner",
                    "--no-privileges",
                    "-d",
                    target.secret_url(),
                ])
                .output()
                .expect("pg_dump runs");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Engine::Mysql => {
            let url = url_parts(target.secret_url());
            let out = Command::new("mariadb-dump")
                .args([
                    "--no-data",
                    "--routines",
                    "--triggers",
                    "--skip-comments",
                    "--skip-dump-date",
                ])
                .args(["-h", &url.0, "-P", &url.1, "-u", &url.2, &url.3])
                .output()
                .expect("mariadb-dump runs");
            assert!(
                out.status.success(),
                "mariadb-dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // A NEXTVAL default names its sequence's database: the copy's own.
            String::from_utf8_lossy(&out.stdout).replace(&url.3, "DB")
        }
        Engine::Sqlite => {
            let conn = rusqlite::Connection::open(target.sqlite_path().unwrap()).unwrap();
            let mut stmt = conn
                .prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
                .unwrap();
            let rows: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.join(";\n")
        }
    };
    text.lines()
        .map(unwrap_versioned_comment)
        .filter(|l| {
            !l.starts_with("--")
                && !l.starts_with("SET ")
                && !l.starts_with("/*!")
                && !l.trim().is_empty()
        })
        .filter(|l| !l.starts_with("SELECT pg_catalog.set_config") && !l.starts_with("\\"))
        // AUTO_INCREMENT=N is compared on its own (the counters); DEFINER names who ran the
        // restore.
        .map(|l| drop_token(&drop_token(&l, " AUTO_INCREMENT="), " DEFINER="))
        .collect::<Vec<_>>()
        .join("\n")
}

/// mariadb-dump writes views and triggers inside `/*!50001 … */`: the statement, unwrapped.
pub(crate) fn unwrap_versioned_comment(line: &str) -> String {
    let Some(rest) = line.strip_prefix("/*!") else {
        return line.to_owned();
    };
    let body = rest
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start();
    let body = body.trim_end().trim_end_matches(';').trim_end();
    body.strip_suffix("*/")
        .unwrap_or(body)
        .trim_end()
        .to_owned()
}

/// `line` without the token that starts with `prefix` (up to the next space).
fn drop_token(line: &str, prefix: &str) -> String {
    match line.find(prefix) {
        Some(at) => {
            let end = line[at + prefix.len()..]
                .find(' ')
                .map_or(line.len(), |e| at + prefix.len() + e);
            format!("{}{}", &line[..at], &line[end..])
        }
        None => line.to_owned(),
    }
}

/// (host, port, user, database) of a mysql:// URL.
pub(crate) fn url_parts(url: &str) -> (String, String, String, String) {
    let rest = url.split_once("://").unwrap().1;
    let (auth, hostpath) = rest.rsplit_once('@').unwrap();
    let (hostport, db) = hostpath.split_once('/').unwrap();
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    (
        host.into(),
        port.into(),
        auth.split(':').next().unwrap().into(),
        db.split('?').next().unwrap().into(),
    )
}

const PG_EXTRAS: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE SCHEMA sales;
CREATE TABLE sales.\"Order\" (id bigserial PRIMARY KEY, amount numeric(10,2) NOT NULL DEFAULT 0,
  doubled numeric GENERATED ALWAYS AS (amount * 2) STORED, feeling mood, qty positive);
INSERT INTO sales.\"Order\" (amount, feeling, qty) VALUES (1.5, 'ok', 1), (2, 'happy', 3);
CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
INSERT INTO ident (note) VALUES ('a'), ('b');
COMMENT ON TABLE ident IS 'identity rows';
COMMENT ON COLUMN ident.note IS 'free text';
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := NEW.note || '!'; RETURN NEW; END $$;
CREATE TRIGGER ident_touch BEFORE INSERT ON ident FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW happy_orders AS SELECT id, amount FROM sales.\"Order\" WHERE feeling = 'happy';
CREATE SEQUENCE invoice_no START 1000;
SELECT nextval('invoice_no');
CREATE TABLE readings (id int NOT NULL, at date NOT NULL, v real, PRIMARY KEY (id, at))
  PARTITION BY RANGE (at);
CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO readings SELECT g, date '2025-06-01' + (g % 400), g / 7.0 FROM generate_series(1, 3000) g;
CREATE SCHEMA ext;
CREATE EXTENSION citext WITH SCHEMA ext;
CREATE EXTENSION pg_trgm;
CREATE TABLE tags (id int PRIMARY KEY, name ext.citext NOT NULL UNIQUE);
CREATE INDEX tags_trgm ON tags USING gin ((name::text) gin_trgm_ops);
INSERT INTO tags VALUES (1, 'Rust'), (2, 'rust-lang'), (3, 'PostgreSQL');
CREATE TABLE docs (id int PRIMARY KEY, j json, jb jsonb);
INSERT INTO docs VALUES (1, '{\"b\": 1,  \"a\": [1.0, 2e0], \"b\": 3}', '{\"x\": 1.0, \"y\": 1e2, \"z\": \"é\"}'),
  (2, NULL, 'null'), (3, '[ ]', '[1.50]');
";

/// JSON comes back as the server printed it, not in the digest's canonical form.
const PG_SAME: &str =
    "SELECT string_agg(coalesce(j::text, '-') || ' | ' || jb::text, ', ' ORDER BY id) FROM docs";

/// Backs up the kitchen sink plus `extras`, restores it into an empty database and compares
/// digests, schema dumps, counters, and what the `same` queries return on both sides.
async fn roundtrip(engine: Engine, extras: &str, same: &[&str]) {
    let source = TestDb::new(engine).await;
    source.load_kitchen_sink().await;
    if !extras.is_empty() {
        source.execute(extras).await;
    }
    let repo = tempfile::tempdir().unwrap();
    let report = backup(&source.target, repo.path()).await;
    assert!(report.total_rows > 2000);
    for (name, rows, digest) in TestDb::kitchen_sink_expected() {
        let t = report.tables.iter().find(|t| t.table == name).unwrap();
        assert_eq!(
            (t.rows, t.digest.to_string()),
            (rows, digest),
            "{engine} {name}"
        );
    }
    // The stored rows (JSON as the server printed it) digest to the manifest's digests.
    let checked = verify(repo.path(), true).await;
    assert!(checked.ok, "{engine}: {:?}", checked.snapshots);
    let copy = TestDb::new(engine).await;
    let restored = restore(repo.path(), &copy.target, |o| o.jobs = 2).await;
    assert!(restored.verified);
    assert_eq!(restored.tables.len(), report.tables.len());
    assert!(restored
        .tables
        .iter()
        .all(|t| t.restored == Some(t.expected)));
    let expected = if engine == Engine::Postgres {
        // PostgreSQL does not deparse every expression idempotently (a CHECK with IN (…) comes
        // back with its casts moved), and pg_dump | psql changes it the same way: compare with
        // the source's schema after one pg_dump round.
        let anchor = TestDb::new(engine).await;
        let out = Command::new(pg_bin("pg_dump"))
            .args([
                "--schema-only",
                "--no-owner",
                "--no-privileges",
                "-d",
                source.target.secret_url(),
            ])
            .output()
            .unwrap();
        let load = Command::new(pg_bin("psql"))
            .args([
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                anchor.target.secret_url(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&out.stdout)?;
                child.wait()
            })
            .unwrap();
        assert!(load.success());
        schema_dump(&anchor)
    } else {
        schema_dump(&source)
    };
    assert_eq!(
        expected,
        schema_dump(&copy),
        "{engine}: the restored schema differs"
    );
    // Sequence positions and auto-increment counters are not in a schema dump.
    let counters = match engine {
        Engine::Postgres => Some(
            "SELECT string_agg(schemaname || '.' || sequencename || '=' || coalesce(last_value::text, '-'), ',' \
             ORDER BY schemaname, sequencename) FROM pg_sequences",
        ),
        Engine::Mysql => Some(
            "SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '=', AUTO_INCREMENT) ORDER BY TABLE_NAME) \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL",
        ),
        Engine::Sqlite => None,
    };
    if let Some(sql) = counters {
        let (before, after) = (scalar(&source, sql).await, scalar(&copy, sql).await);
        assert!(
            before.as_deref().is_some_and(|v| !v.is_empty()),
            "{engine}: no counters"
        );
        assert_eq!(before, after, "{engine}: sequence positions / counters");
    }
    for sql in same {
        let (before, after) = (scalar(&source, sql).await, scalar(&copy, sql).await);
        assert!(before.is_some(), "{engine}: {sql} returns nothing");
        assert_eq!(before, after, "{engine}: {sql}");
    }
}

pub(crate) async fn scalar(db: &TestDb, sql: &str) -> Option<String> {
    let mut c = upkeep_db::Database::connect(&db.target, upkeep_db::OpenMode::ReadOnly)
        .await
        .unwrap();
    let v = c.query_scalar(sql).await.unwrap();
    c.close().await;
    v
}

#[tokio::test]
async fn pg_backup_restore_roundtrip_keeps_data_and_schema() {
    roundtrip(Engine::Postgres, PG_EXTRAS, &[PG_SAME]).await;
}

#[tokio::test]
async fn mysql_backup_restore_roundtrip_keeps_data_and_schema() {
    roundtrip(
        Engine::Mysql,
        "CREATE VIEW big_numbers AS SELECT id FROM numbers WHERE id > 1000;
         CREATE TABLE audit (id int AUTO_INCREMENT PRIMARY KEY, note varchar(20));
         INSERT INTO audit (note) VALUES ('a'), ('b'), ('c');
         DELETE FROM audit WHERE id = 3;
         CREATE TABLE docs (id int PRIMARY KEY, j JSON);
         INSERT INTO docs VALUES (1, '{\"b\": 1,  \"a\": [1.0, 2e0], \"b\": 3}'), (2, '[ ]'), (3, NULL);
         CREATE SEQUENCE invoice_no START WITH 1000 CACHE 10;
         SELECT NEXTVAL(invoice_no);
         CREATE TABLE invoices (no bigint NOT NULL DEFAULT NEXTVAL(invoice_no) PRIMARY KEY, v int);
         INSERT INTO invoices (v) VALUES (1), (2);",
        &[
            "SELECT GROUP_CONCAT(COALESCE(j, '-') ORDER BY id SEPARATOR ' | ') FROM docs",
            "SELECT next_not_cached_value FROM invoice_no",
        ],
    )
    .await;
}

#[tokio::test]
async fn sqlite_backup_restore_roundtrip_keeps_data_and_schema() {
    roundtrip(
        Engine::Sqlite,
        "CREATE VIEW big_numbers AS SELECT id FROM numbers WHERE id > 1000;",
        &[],
    )
    .await;
}

#[tokio::test]
async fn pg_restore_refuses_existing_tables_without_clean() {
    let source = TestDb::new(Engine::Postgres).await;
    source
        .execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');")
        .await;
    let repo = tempfile::tempdir().unwrap();
    backup(&source.target, repo.path()).await;
    // Restoring onto the source itself: its table exists and holds rows.
    let options = upkeep_backup::RestoreOptions::new(repo.path().to_owned(), source.target.clone());
    let err = upkeep_backup::restore(options, Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, upkeep_backup::BackupError::NotEmpty { .. }),
        "{err}"
    );
    source.execute("INSERT INTO t VALUES (2, 'b')").await;
    let report = restore(repo.path(), &source.target, |o| o.clean = true).await;
    assert!(report.verified);
    assert_eq!(report.total_rows, 1);
}

#[tokio::test]
async fn pg_sqlite_cross_engine_restores_prove_themselves() {
    // Chinook's types all have an equivalent in SQLite: the restore verifies.
    let pg = TestDb::new(Engine::Postgres).await;
    pg.load_chinook().await;
    let repo = tempfile::tempdir().unwrap();
    backup(&pg.target, repo.path()).await;
    let sqlite = TestDb::new(Engine::Sqlite).await;
    let report = restore(repo.path(), &sqlite.target, |_| {}).await;
    // Chinook's keys, foreign keys and plain indexes all translate: everything is proven.
    assert!(report.verified, "PostgreSQL → SQLite: {:?}", report.schema);
    assert!(report.schema.len() > 30, "{:?}", report.schema);
    assert_eq!(report.total_rows, 15_607);
    // Chinook's types all have a SQLite equivalent: nothing to list.
    assert!(
        report.lossy_conversions.is_empty(),
        "{:?}",
        report.lossy_conversions
    );

    let sqlite_src = TestDb::new(Engine::Sqlite).await;
    sqlite_src.load_chinook().await;
    let repo2 = tempfile::tempdir().unwrap();
    backup(&sqlite_src.target, repo2.path()).await;
    let pg2 = TestDb::new(Engine::Postgres).await;
    let report = restore(repo2.path(), &pg2.target, |_| {}).await;
    assert!(report.data_verified, "SQLite → PostgreSQL");
    // Its INTEGER PRIMARY KEYs assign ids, which the PostgreSQL tables do not: named, so
    // the restore is not called verified.
    assert!(!report.verified);
    assert!(report.schema.iter().any(|c| matches!(&c.status,
        upkeep_core::ObjectStatus::Weakened { detail } if detail.contains("the identity of"))));
}

#[tokio::test]
async fn pg_to_sqlite_lossy_decimals_are_caught_by_the_digest() {
    // The kitchen sink's 20-digit decimals do not fit SQLite: the proof must say so, by table.
    let pg = TestDb::new(Engine::Postgres).await;
    pg.load_kitchen_sink().await;
    let repo = tempfile::tempdir().unwrap();
    backup(&pg.target, repo.path()).await;
    let sqlite = TestDb::new(Engine::Sqlite).await;
    let options = upkeep_backup::RestoreOptions::new(repo.path().to_owned(), sqlite.target.clone());
    let err = upkeep_backup::restore(options, Default::default())
        .await
        .unwrap_err();
    assert!(err.is_mismatch(), "{err}");
    assert!(
        matches!(&err, upkeep_backup::BackupError::Mismatch { .. }),
        "a digest mismatch, not damage: {err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("all_types"), "{msg}");
    assert!(!msg.contains("numbers"), "{msg}");
    // The tables that fit restore, and the report lists what the mapping changed.
    let sqlite = TestDb::new(Engine::Sqlite).await;
    let report = restore(repo.path(), &sqlite.target, |o| {
        o.include = vec!["numbers".into(), "float_specials".into()];
    })
    .await;
    assert!(report.verified);
    assert_eq!(
        report.lossy_conversions,
        [
            "float_specials.f_decimal (numeric): SQLite keeps about 15 significant digits of a decimal",
            "numbers.is_even (boolean): boolean becomes an integer 0/1"
        ]
    );
}

async fn chinook_roundtrip(engine: Engine) {
    let source = TestDb::new(engine).await;
    source.load_chinook().await;
    let repo = tempfile::tempdir().unwrap();
    let report = backup(&source.target, repo.path()).await;
    assert_eq!(report.tables.len(), 11);
    let copy = TestDb::new(engine).await;
    let restored = restore(repo.path(), &copy.target, |o| o.jobs = 3).await;
    assert!(restored.verified);
    assert_eq!(restored.total_rows, 15_607);
    assert_eq!(
        schema_dump(&source),
        schema_dump(&copy),
        "{engine}: Chinook's schema"
    );
}

#[tokio::test]
async fn pg_chinook_roundtrip() {
    chinook_roundtrip(Engine::Postgres).await;
}

#[tokio::test]
async fn mysql_chinook_roundtrip() {
    chinook_roundtrip(Engine::Mysql).await;
}

#[tokio::test]
async fn sqlite_chinook_roundtrip() {
    chinook_roundtrip(Engine::Sqlite).await;
}

#[tokio::test]
async fn sqlite_verify_against_a_live_database_names_changed_tables() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.load_chinook().await;
    let repo = tempfile::tempdir().unwrap();
    backup(&db.target, repo.path()).await;
    let options = |against| upkeep_backup::VerifyOptions {
        repo: repo.path().to_owned(),
        snapshots: vec!["latest".into()],
        read_data: false,
        against: Some(against),
        jobs: 1,
    };
    let same = upkeep_backup::verify(options(db.target.clone()), Default::default())
        .await
        .unwrap();
    assert!(same.ok, "{same:?}");
    db.execute("UPDATE Genre SET Name = 'Polka' WHERE GenreId = 1;")
        .await;
    let changed = upkeep_backup::verify(options(db.target.clone()), Default::default())
        .await
        .unwrap();
    assert!(!changed.ok);
    let problems = changed.snapshots[0].problems.join("\n");
    assert!(
        problems.contains("Genre") && !problems.contains("Track"),
        "{problems}"
    );
    // A table whose columns changed is a difference too, named, not an error; a dropped one
    // is named as missing.
    db.execute("ALTER TABLE MediaType ADD COLUMN Note text; DROP TABLE Playlisttrack;")
        .await;
    let altered = upkeep_backup::verify(options(db.target.clone()), Default::default())
        .await
        .unwrap();
    let problems = altered.snapshots[0].problems.join("\n");
    assert!(
        problems.contains("table MediaType: its columns differ")
            && problems.contains("Note")
            && problems.contains("table PlaylistTrack: missing"),
        "{problems}"
    );
}

#[tokio::test]
async fn pg_edge_values_survive_the_binary_copy() {
    // Restores into PostgreSQL write with binary COPY: the values whose canonical text is not
    // the plain ISO form must come back as they were.
    let source = TestDb::new(Engine::Postgres).await;
    source
        .execute(
            "CREATE TABLE edges (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz, t time,
                                 n numeric, f real, s smallint, tags text[]);
             INSERT INTO edges VALUES
               (1, 'infinity', 'infinity', '-infinity', '24:00:00', 'NaN', 'Infinity', -32768, NULL),
               (2, '4714-11-24 BC', '0044-03-15 12:00:00 BC', '10000-01-01 00:00:00.5+00', '00:00:00.000001',
                '-0.000000000000000000000000000001', '-3.4028235e38', 32767, NULL),
               (3, '9999-12-31', '1999-12-31 23:59:59.999999', '2000-01-01 00:00:00+00', '13:14:15',
                '123456789012345678901234567890.5', 'NaN', 0, NULL);
             CREATE TABLE other_types (id int PRIMARY KEY, tags text[], span interval);
             INSERT INTO other_types VALUES (1, '{a,\"b c\"}', '1 day 02:00:00'), (2, NULL, NULL);",
        )
        .await;
    let repo = tempfile::tempdir().unwrap();
    let report = backup(&source.target, repo.path()).await;
    let copy = TestDb::new(Engine::Postgres).await;
    let restored = restore(repo.path(), &copy.target, |o| o.jobs = 2).await;
    assert!(restored.verified);
    for t in &report.tables {
        let r = restored.tables.iter().find(|r| r.table == t.table).unwrap();
        assert_eq!(r.restored, Some(t.digest), "{}", t.table);
    }
    let mut db = copy.connect().await;
    let text = db
        .query_scalar("SELECT d::text || ' ' || tz::text FROM edges WHERE id = 2")
        .await
        .unwrap();
    db.close().await;
    assert_eq!(
        text.as_deref(),
        Some("4714-11-24 BC 10000-01-01 00:00:00.5+00")
    );
}

#[tokio::test]
async fn sqlite_data_only_restore_refuses_tables_with_rows_then_replaces_them() {
    let source = TestDb::new(Engine::Sqlite).await;
    source
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');")
        .await;
    let repo = tempfile::tempdir().unwrap();
    backup(&source.target, repo.path()).await;
    let copy = TestDb::new(Engine::Sqlite).await;
    copy.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (9, 'z');")
        .await;
    let mut options =
        upkeep_backup::RestoreOptions::new(repo.path().to_owned(), copy.target.clone());
    options.mode = upkeep_backup::SchemaMode::DataOnly;
    let err = upkeep_backup::restore(options, Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, upkeep_backup::BackupError::NotEmpty { tables, .. } if tables == "t"),
        "{err}"
    );
    let report = restore(repo.path(), &copy.target, |o| {
        o.mode = upkeep_backup::SchemaMode::DataOnly;
        o.clean = true;
    })
    .await;
    assert!(report.verified);
    assert_eq!(report.total_rows, 2);
}

#[tokio::test]
async fn pg_restore_of_some_tables_creates_only_those() {
    let source = TestDb::new(Engine::Postgres).await;
    source
        .execute(
            "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1);
             CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a(id)); INSERT INTO b VALUES (1, 1);
             CREATE TABLE c (id int PRIMARY KEY); INSERT INTO c VALUES (1), (2);",
        )
        .await;
    let repo = tempfile::tempdir().unwrap();
    backup(&source.target, repo.path()).await;
    let copy = TestDb::new(Engine::Postgres).await;
    let report = restore(repo.path(), &copy.target, |o| o.include = vec!["c".into()]).await;
    assert!(report.verified);
    assert_eq!(report.tables.len(), 1);
    assert_eq!(report.total_rows, 2);
    let mut db = copy.connect().await;
    let tables = db
        .query_scalar(
            "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class \
             WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
        )
        .await
        .unwrap();
    db.close().await;
    assert_eq!(tables.as_deref(), Some("c"));
}

#[tokio::test]
async fn pg_restore_loads_tables_frozen() {
    let source = TestDb::new(Engine::Postgres).await;
    source
        .execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
             CREATE TABLE p (id int, k int) PARTITION BY RANGE (k);
             CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
             CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200);
             INSERT INTO p SELECT g, g % 200 FROM generate_series(1, 5000) g;",
        )
        .await;
    let repo = tempfile::tempdir().unwrap();
    backup(&source.target, repo.path()).await;
    let copy = TestDb::new(Engine::Postgres).await;
    let report = restore(repo.path(), &copy.target, |_| {}).await;
    assert!(report.verified);
    // Every page of every loaded table is frozen: nothing is left for a vacuum to freeze,
    // and no read after the restore sets hint bits on, and writes again, every page.
    let mut db = copy.connect().await;
    db.execute_statement("CREATE EXTENSION pg_visibility")
        .await
        .unwrap();
    for table in ["t", "p1", "p2"] {
        let frozen = db
            .query_scalar(&format!(
                "SELECT format('%s of %s', all_frozen, \
                        pg_relation_size('{table}') / current_setting('block_size')::int) \
                 FROM pg_visibility_map_summary('{table}')"
            ))
            .await
            .unwrap()
            .unwrap();
        let (all, pages) = frozen.split_once(" of ").unwrap();
        assert!(
            pages != "0" && all == pages,
            "{table}: {frozen} pages frozen"
        );
    }
    db.close().await;
}

/// A partitioned table whose partitions are backed up too is stored once, as its partitions:
/// no chunks of its own, its digest theirs. It restores into PostgreSQL and, as a table of its
/// own, into SQLite and MariaDB, and every restore proves itself.
#[tokio::test]
async fn pg_partitioned_tables_are_stored_once() {
    let source = TestDb::new(Engine::Postgres).await;
    source
        .execute(
            "CREATE TABLE readings (id int NOT NULL, at date NOT NULL, v real, PRIMARY KEY (id, at))
               PARTITION BY RANGE (at);
             CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
             CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
               PARTITION BY RANGE (id);
             CREATE TABLE readings_2026_low PARTITION OF readings_2026 FOR VALUES FROM (MINVALUE) TO (2000);
             CREATE TABLE readings_2026_high PARTITION OF readings_2026 FOR VALUES FROM (2000) TO (MAXVALUE);
             INSERT INTO readings SELECT g, date '2025-06-01' + (g % 400), g / 7.0 FROM generate_series(1, 3000) g;
             CREATE FUNCTION readings_check() RETURNS trigger LANGUAGE plpgsql AS
               $$BEGIN NEW.v := coalesce(NEW.v, 0); RETURN NEW; END$$;
             CREATE TRIGGER readings_check BEFORE INSERT ON readings
               FOR EACH ROW EXECUTE FUNCTION readings_check();",
        )
        .await;
    let repo = tempfile::tempdir().unwrap();
    let report = backup(&source.target, repo.path()).await;
    let triggers = "SELECT string_agg(tgrelid::regclass || ' ' || tgname, ', ' ORDER BY 1) \
                    FROM pg_trigger WHERE NOT tgisinternal";
    let table = |name: &str| report.tables.iter().find(|t| t.table == name).unwrap();
    for (parent, parts) in [
        ("readings", &["readings_2025", "readings_2026"][..]),
        (
            "readings_2026",
            &["readings_2026_low", "readings_2026_high"][..],
        ),
    ] {
        let mut sum = upkeep_core::Digest::default();
        for p in parts {
            // readings_2026 is itself stored as its partitions.
            assert_eq!(table(p).chunks > 0, *p != "readings_2026", "{p}");
            sum.merge(&table(p).digest);
        }
        assert_eq!(table(parent).chunks, 0, "{parent} has chunks of its own");
        assert_eq!(table(parent).digest, sum, "{parent}");
    }
    assert_eq!(table("readings").rows, 3000);
    // Each row once, not under its partition and again under its parents.
    assert_eq!(report.total_rows, 3000);
    assert!(verify(repo.path(), true).await.ok);

    for engine in [Engine::Postgres, Engine::Sqlite, Engine::Mysql] {
        let copy = TestDb::new(engine).await;
        let restored = restore(repo.path(), &copy.target, |o| o.jobs = 2).await;
        assert!(restored.data_verified, "{engine}");
        assert_eq!(restored.total_rows, 3000, "{engine}");
        // Into another engine the trigger and its function are named, not dropped quietly.
        let named = |kind: upkeep_core::ObjectKind| {
            restored.schema.iter().any(|c| {
                c.key.kind == kind
                    && matches!(c.status, upkeep_core::ObjectStatus::NotCarried { .. })
            })
        };
        if engine == Engine::Postgres {
            assert!(restored.verified, "{:?}", restored.schema_problems());
        } else {
            assert!(!restored.verified);
            assert!(
                named(upkeep_core::ObjectKind::Trigger) && named(upkeep_core::ObjectKind::Function)
            );
        }
        // Read back through the parent, its rows digest to the sum of its partitions'.
        let parent = restored
            .tables
            .iter()
            .find(|t| t.table == "readings")
            .unwrap();
        assert_eq!(parent.restored, Some(table("readings").digest), "{engine}");
        // The row trigger is created on the parent only, and cloned onto each partition.
        if engine == Engine::Postgres {
            assert_eq!(
                scalar(&copy, triggers).await,
                scalar(&source, triggers).await
            );
        }
    }

    // A manifest whose partitioned table does not add up to its partitions is refused.
    let manifest = std::fs::read_dir(repo.path().join("snapshots"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&manifest).unwrap();
    let (whole, part) = (
        table("readings").digest.to_string(),
        table("readings_2025").digest.to_string(),
    );
    let forged = format!("v1:3000:{}", &part[part.len() - 64..]);
    let edited = text.replace(&whole, &forged);
    assert_ne!(edited, text);
    std::fs::write(&manifest, edited).unwrap();
    let checked = verify(repo.path(), false).await;
    assert!(!checked.ok);
    let problems = format!("{:?}", checked.snapshots);
    assert!(
        problems.contains("does not add up to its partitions"),
        "{problems}"
    );
    // So is one whose partitioned table names a partition it does not hold.
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let parent = json["tables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["name"]["name"] == "readings_2026")
        .unwrap();
    parent["partitions"][0]["name"] = "readings_2027".into();
    std::fs::write(&manifest, serde_json::to_string(&json).unwrap()).unwrap();
    let checked = verify(repo.path(), false).await;
    let problems = format!("{:?}", checked.snapshots);
    assert!(
        problems.contains("names partition readings_2027, which it does not hold"),
        "{problems}"
    );
}
