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

/// The shared material (`shared/`: spec, datasets): `UPKEEP_SHARED_DIR`, else `../shared`
/// beside the repository.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var("UPKEEP_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    assert!(
        dir.is_dir(),
        "shared material not found at {} (set UPKEEP_SHARED_DIR)",
        dir.display()
    );
    dir
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

    /// Loads the Chinook sample database from `shared/datasets/chinook`.
    pub async fn load_chinook(&self) {
        let dir = shared_dir().join("datasets/chinook");
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

/// A PostgreSQL server of one test's own, started from the machine's binaries in a temporary
/// directory: for tests that stop the server, which the shared one must survive. Stopped
/// (immediately) when dropped.
pub struct OwnPgServer {
    pub url: String,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl OwnPgServer {
    /// Runs initdb and starts the server on a free port; panics with the server's log when
    /// either fails.
    pub fn start() -> Self {
        use std::process::{Command, Stdio};
        let bindir = pg_bindir();
        let dir = tempfile::Builder::new()
            .prefix("upkeep-own-pg")
            .tempdir_in("/tmp")
            .expect("a temporary directory");
        // initdb and postgres refuse to run as root: run them as the postgres user.
        let as_user: Vec<String> = if is_root() {
            Command::new("chown")
                .args(["postgres:", &dir.path().display().to_string()])
                .status()
                .expect("chown runs");
            vec![
                "runuser".into(),
                "-u".into(),
                "postgres".into(),
                "--".into(),
            ]
        } else {
            Vec::new()
        };
        let run = |program: String, args: &[String]| {
            let mut all = as_user.clone();
            all.push(program);
            all.extend_from_slice(args);
            let mut c = Command::new(&all[0]);
            c.args(&all[1..]);
            c
        };
        let data = dir.path().join("data").display().to_string();
        let out = run(
            format!("{bindir}/initdb"),
            &[
                "-D".into(),
                data.clone(),
                "-A".into(),
                "trust".into(),
                "-U".into(),
                "postgres".into(),
                "--no-sync".into(),
            ],
        )
        .output()
        .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("a log file");
        let child = run(
            format!("{bindir}/postgres"),
            &[
                "-D".into(),
                data,
                "-p".into(),
                port.to_string(),
                "-k".into(),
                dir.path().display().to_string(),
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                "fsync=off".into(),
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("postgres starts");
        let server = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            child: Some(child),
            dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        // The port accepts before the server does ("the database system is starting up"):
        // wait for the log line that says it is ready.
        let ready = || {
            std::fs::read_to_string(server.dir.path().join("postgres.log"))
                .is_ok_and(|log| log.contains("ready to accept connections"))
        };
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || !ready() {
            assert!(
                std::time::Instant::now() < deadline,
                "PostgreSQL did not start; its log: {}",
                std::fs::read_to_string(server.dir.path().join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }

    /// Stops the server at once, as a crash or `pg_ctl stop -m immediate` would: every
    /// session is cut.
    pub fn stop(&mut self) {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
        {
            // SIGQUIT is PostgreSQL's immediate shutdown.
            let _ = std::process::Command::new("kill")
                .args(["-QUIT", &pid])
                .status();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for OwnPgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The directory of the newest PostgreSQL server binaries on this machine.
fn pg_bindir() -> String {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/test installs them)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists() && p.join("initdb").exists())
        .collect();
    // The newest major version: /usr/lib/postgresql/<major>/bin.
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.split('.').next())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
        .expect("initdb and postgres under /usr/lib/postgresql/*/bin")
        .display()
        .to_string()
}
