//! Servers of one test's own, started from the machine's binaries in a temporary directory:
//! for tests that stop, crash, restart or set back a server, which the shared ones must
//! survive. Stopped (immediately) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Sends `signal` to the process whose id is the first line of `pid_file`.
fn signal_pid_file(pid_file: &Path, signal: &str) -> bool {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()))
    else {
        return false;
    };
    Command::new("kill")
        .args([signal, &pid])
        .status()
        .is_ok_and(|s| s.success())
}

/// Copies a directory tree (a stopped server's data directory), keeping owners and modes.
fn copy_tree(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(status.success(), "copying {} failed", from.display());
}

/// A PostgreSQL server of one test's own.
pub struct OwnPgServer {
    pub url: String,
    port: u16,
    bindir: String,
    /// `runuser -u postgres --` when running as root (initdb and postgres refuse root).
    as_user: Vec<String>,
    /// `-c name=value` settings of every start.
    settings: Vec<String>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl OwnPgServer {
    /// Runs initdb and starts the server on a free port; panics with the server's log when
    /// either fails.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`Self::start`] with extra `name=value` settings (`synchronous_commit=off`).
    pub fn start_with(settings: &[&str]) -> Self {
        let bindir = pg_bindir();
        let dir = tempfile::Builder::new()
            .prefix("upkeep-own-pg")
            .tempdir_in("/tmp")
            .expect("a temporary directory");
        let as_user: Vec<String> = if is_root() {
            Command::new("chown")
                .args(["postgres:", &dir.path().display().to_string()])
                .status()
                .expect("chown runs");
            ["runuser", "-u", "postgres", "--"]
                .map(String::from)
                .to_vec()
        } else {
            Vec::new()
        };
        let port = free_port();
        let mut server = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            bindir,
            as_user,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
            dir,
        };
        let data = server.data_dir().display().to_string();
        let out = server
            .command(
                "initdb",
                &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
            )
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.launch();
        server
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = format!("{}/{program}", self.bindir);
        let mut all: Vec<&str> = self.as_user.iter().map(String::as_str).collect();
        all.push(&program);
        all.extend_from_slice(args);
        let mut c = Command::new(all[0]);
        c.args(&all[1..]);
        c
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the server on its data directory and waits until it accepts connections.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let data = self.data_dir().display().to_string();
        let (port, socket_dir) = (self.port.to_string(), self.dir.path().display().to_string());
        let mut args = vec![
            "-D",
            &data,
            "-p",
            &port,
            "-k",
            &socket_dir,
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "autovacuum=off",
        ];
        for s in &self.settings {
            args.push("-c");
            args.push(s);
        }
        // Each start's log is appended: "ready" must be looked for after this start only.
        let before = self.log().matches("ready to accept connections").count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("a log file");
        let child = self
            .command("postgres", &args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        self.wait_ready(before);
    }

    /// Waits for one more "ready to accept connections" than `before` in the log: the port
    /// accepts before the server does ("the database system is starting up").
    fn wait_ready(&self, before: usize) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = self.log().matches("ready to accept connections").count() > before;
            if ready && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start; its log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once, as a crash or `pg_ctl stop -m immediate` would: every
    /// session is cut, and the next start runs crash recovery.
    pub fn stop(&mut self) {
        self.stop_with("-QUIT");
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`): a shutdown checkpoint, no recovery
    /// at the next start.
    pub fn stop_clean(&mut self) {
        self.stop_with("-INT");
    }

    fn stop_with(&mut self, signal: &str) {
        signal_pid_file(&self.data_dir().join("postmaster.pid"), signal);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Stops the server cleanly and starts it again.
    pub fn restart(&mut self) {
        self.stop_clean();
        self.launch();
    }

    /// Waits until the server has finished a crash recovery that `before` log lines of
    /// "ready to accept connections" preceded (after a backend was killed).
    pub fn wait_recovered(&self, before: usize) {
        self.wait_ready(before);
    }

    /// How often the log says the server became ready (see [`Self::wait_recovered`]).
    pub fn ready_count(&self) -> usize {
        self.log().matches("ready to accept connections").count()
    }

    /// Copies the data directory of the stopped server to `to` (a cold backup).
    pub fn copy_data_to(&self, to: &Path) {
        assert!(self.child.is_none(), "copy the data of a stopped server");
        copy_tree(&self.data_dir(), to);
    }

    /// Replaces the data directory of the stopped server with the copy at `from`, as an
    /// operator putting back a file-level backup does.
    pub fn put_back_data(&self, from: &Path) {
        assert!(self.child.is_none(), "put data back into a stopped server");
        copy_tree(from, &self.data_dir());
    }
}

impl Drop for OwnPgServer {
    fn drop(&mut self) {
        self.stop();
    }
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

/// A MariaDB server of one test's own.
pub struct OwnMyServer {
    /// `mysql://root@127.0.0.1:PORT/mysql`.
    pub url: String,
    port: u16,
    /// `--name=value` options of every start.
    options: Vec<String>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// The first of `names` found on PATH or in /usr/sbin.
fn which(names: &[&str]) -> String {
    for name in names {
        for dir in std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .chain(["/usr/sbin", "/usr/bin"])
        {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p.display().to_string();
            }
        }
    }
    panic!("none of {names:?} found (scripts/test installs mariadb-server)")
}

impl OwnMyServer {
    /// Installs a data directory and starts the server with extra `--name=value` options.
    pub fn start_with(options: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("upkeep-own-my")
            .tempdir_in("/tmp")
            .expect("a temporary directory");
        let data = dir.path().join("data");
        let mut install = Command::new(which(&["mariadb-install-db", "mysql_install_db"]));
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if is_root() {
            install.arg("--user=root");
        }
        let out = install.output().expect("mariadb-install-db runs");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut server = Self {
            url: format!("mysql://root@127.0.0.1:{port}/mysql"),
            port,
            options: options.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
            dir,
        };
        server.launch();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mariadbd.log")).unwrap_or_default()
    }

    /// Starts the server and waits until it accepts connections.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let d = self.dir.path();
        let mut c = Command::new(which(&["mariadbd", "mysqld"]));
        c.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", d.join("mariadbd.log").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=64M",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .args(&self.options);
        if is_root() {
            c.arg("--user=root");
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let client = which(&["mariadb", "mysql"]);
        loop {
            let ok = Command::new(&client)
                .args([
                    "--no-defaults",
                    "--protocol=TCP",
                    "-h",
                    "127.0.0.1",
                    "-u",
                    "root",
                ])
                .arg(format!("-P{}", self.port))
                .args(["-e", "SELECT 1"])
                .stdin(Stdio::null())
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "MariaDB exited ({status}) while starting; its log: {}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "MariaDB did not start; its log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server cleanly (SIGTERM, its normal shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_pid_file(&self.dir.path().join("mariadbd.pid"), "-TERM");
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Stops the server cleanly and starts it again: InnoDB forgets every table's stamp.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for OwnMyServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
