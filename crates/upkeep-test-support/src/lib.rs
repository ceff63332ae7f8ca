//! Test support: a fresh database per test, and the fixtures.
//!
//! PostgreSQL and MariaDB tests run against the servers named by `UPKEEP_TEST_PG_URL` and
//! `UPKEEP_TEST_MYSQL_URL` (`scripts/test` starts throwaway ones when they are unset). A test
//! whose server is not configured fails with a message saying so: it never skips.
//!
//! ```no_run
//! # async fn f() {
//! use upkeep_test_support::TestDb;
//! let db = TestDb::new(upkeep_core::Engine::Postgres).await;
//! db.load_kitchen_sink().await;
//! # }
//! ```
#![allow(clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use upkeep_core::Engine;
use upkeep_db::{Database, OpenMode, Target};

/// The repository's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The server URL a test of `engine` uses; panics with instructions when it is not set.
pub fn server_url(engine: Engine) -> String {
    let var = match engine {
        Engine::Postgres => "UPKEEP_TEST_PG_URL",
        Engine::Mysql => "UPKEEP_TEST_MYSQL_URL",
        Engine::Sqlite => unreachable!("SQLite tests need no server"),
    };
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with scripts/test, which starts throwaway servers")
    })
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub target: Target,
    admin: Option<Target>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("target", &self.target)
            .finish()
    }
}

impl TestDb {
    /// Creates an empty database (a new file for SQLite).
    pub async fn new(engine: Engine) -> Self {
        let name = format!(
            "upkeep_t{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        if engine == Engine::Sqlite {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let target = Target::sqlite(&dir.path().join(format!("{name}.db")));
            let db = Database::connect(&target, OpenMode::Create)
                .await
                .expect("a new SQLite file");
            db.close().await;
            return Self {
                target,
                admin: None,
                name,
                _dir: Some(dir),
            };
        }
        let admin = Target::parse(&server_url(engine), None).expect("a valid test server URL");
        let mut conn = Database::connect(&admin, OpenMode::ReadWrite)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"));
        let q = upkeep_db::quote::ident(engine, &name);
        let create = match engine {
            Engine::Mysql => {
                format!("CREATE DATABASE {q} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            }
            _ => format!("CREATE DATABASE {q} ENCODING 'UTF8' TEMPLATE template0"),
        };
        conn.execute_script(&create)
            .await
            .unwrap_or_else(|e| panic!("creating the test database: {e}"));
        conn.close().await;
        let target = admin.with_database(&name).expect("a database URL");
        Self {
            target,
            admin: Some(admin),
            name,
            _dir: None,
        }
    }

    pub fn engine(&self) -> Engine {
        self.target.engine()
    }

    /// A read-write connection to this database.
    pub async fn connect(&self) -> Database {
        Database::connect(&self.target, OpenMode::ReadWrite)
            .await
            .expect("a connection to the test database")
    }

    /// Runs a SQL script in this database.
    pub async fn execute(&self, sql: &str) {
        let mut db = self.connect().await;
        db.execute_script(sql)
            .await
            .unwrap_or_else(|e| panic!("running SQL in {}: {e}", self.target));
        db.close().await;
    }

    /// Loads `fixtures/kitchen-sink/<engine>.sql`.
    pub async fn load_kitchen_sink(&self) {
        let file = match self.engine() {
            Engine::Postgres => "postgres.sql",
            Engine::Mysql => "mysql.sql",
            Engine::Sqlite => "sqlite.sql",
        };
        let path = fixtures_dir().join("kitchen-sink").join(file);
        let sql =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.execute(&sql).await;
    }

    /// Loads the Chinook sample database from `fixtures/chinook`.
    pub async fn load_chinook(&self) {
        let dir = fixtures_dir().join("chinook");
        match self.engine() {
            Engine::Sqlite => {
                let path = self.target.sqlite_path().expect("a SQLite path");
                std::fs::copy(dir.join("Chinook_Sqlite.sqlite"), path).expect("copying Chinook");
            }
            Engine::Postgres => {
                let sql = std::fs::read_to_string(dir.join("Chinook_PostgreSql.sql"))
                    .expect("Chinook for PostgreSQL");
                // The script creates its own database: keep what follows its `\c chinook;`.
                let body = sql
                    .split_once("\\c chinook;")
                    .map_or(sql.as_str(), |(_, b)| b);
                self.execute(body).await;
            }
            Engine::Mysql => {
                let sql = std::fs::read_to_string(dir.join("Chinook_MySql.sql"))
                    .expect("Chinook for MySQL");
                let body = sql
                    .split_once("USE `Chinook`;")
                    .map_or(sql.as_str(), |(_, b)| b);
                self.execute(&format!("SET NAMES utf8mb4;\n{body}")).await;
            }
        }
    }

    /// The expected digests of the kitchen-sink fixture (`fixtures/kitchen-sink/expected.json`).
    pub fn kitchen_sink_expected() -> Vec<(String, u64, String)> {
        let path = fixtures_dir().join("kitchen-sink/expected.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("expected.json"))
                .expect("JSON");
        let tables = v["tables"].as_object().expect("tables");
        tables
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    t["rows"].as_u64().expect("rows"),
                    t["digest"].as_str().expect("digest").to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin) = self.admin.clone() else {
            return;
        };
        let engine = self.engine();
        let name = self.name.clone();
        // Drop runs outside any runtime's reach: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let mut conn = Database::connect(&admin, OpenMode::ReadWrite).await.ok()?;
                let q = upkeep_db::quote::ident(engine, &name);
                let sql = match engine {
                    Engine::Postgres => format!("DROP DATABASE IF EXISTS {q} WITH (FORCE)"),
                    _ => format!("DROP DATABASE IF EXISTS {q}"),
                };
                let _ = conn.execute_script(&sql).await;
                conn.close().await;
                Some(())
            })
        })
        .join();
    }
}

mod own;
pub use own::{OwnMyServer, OwnPgServer};
