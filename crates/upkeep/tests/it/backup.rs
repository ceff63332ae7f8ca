//! Backups from cron: a killed run leaves no snapshot and the next one reuses its chunks; a
//! server that drops the connection gives a named error and no snapshot; exit codes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use upkeep_core::Engine;
use upkeep_test_support::TestDb;

use crate::{stderr, stdout, upkeep};

fn files_under(dir: &Path) -> usize {
    if !dir.exists() {
        return 0;
    }
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                files_under(&p)
            } else {
                1
            }
        })
        .sum()
}

async fn big_pg_table() -> TestDb {
    let db = TestDb::new(Engine::Postgres).await;
    db.execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, payload text);
         INSERT INTO events SELECT g, md5(g::text) || md5((g * 7)::text) || repeat(md5((g * 3)::text), 4)
         FROM generate_series(1, 400000) g;
         ANALYZE events;",
    )
    .await;
    db
}

#[tokio::test]
async fn pg_killed_backup_leaves_no_snapshot_and_the_next_reuses_its_chunks() {
    let db = big_pg_table().await;
    let repo = tempfile::tempdir().unwrap();
    let url = db.target.secret_url().to_owned();
    let repo_path = repo.path().to_owned();
    let (chunks_at_kill, snapshots_at_kill) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_upkeep"))
            .args([
                "backup",
                &url,
                "--repo",
                repo_path.to_str().unwrap(),
                "--jobs",
                "2",
                "-q",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while files_under(&repo_path.join("chunks")) < 3 {
            assert!(Instant::now() < deadline, "the backup stored no chunks");
            assert!(
                child.try_wait().unwrap().is_none(),
                "the backup ended before it could be killed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        (
            files_under(&repo_path.join("chunks")),
            files_under(&repo_path.join("snapshots")),
        )
    })
    .await
    .unwrap();
    assert!(chunks_at_kill >= 3);
    assert_eq!(
        snapshots_at_kill, 0,
        "a killed backup must not leave a snapshot"
    );
    let url = db.target.secret_url().to_owned();
    let repo_path = repo.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        upkeep(&[
            "backup",
            &url,
            "--repo",
            repo_path.to_str().unwrap(),
            "--json",
        ])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (new, total) = (
        report["chunks_new"].as_u64().unwrap(),
        report["chunks_total"].as_u64().unwrap(),
    );
    assert!(
        new < total,
        "the second backup reused the killed one's chunks ({new} new of {total})"
    );
    assert_eq!(report["total_rows"], 400_000);
    let verify = upkeep(&[
        "verify",
        "--repo",
        repo.path().to_str().unwrap(),
        "--read-data",
    ]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[tokio::test]
async fn pg_backup_stopped_by_a_signal_exits_130_without_a_snapshot() {
    // SIGTERM is what systemd and kill send, SIGINT is Ctrl-C: both stop the run cleanly.
    let db = big_pg_table().await;
    for signal in ["TERM", "INT"] {
        let repo = tempfile::tempdir().unwrap();
        let url = db.target.secret_url().to_owned();
        let repo_path = repo.path().to_owned();
        let out = tokio::task::spawn_blocking(move || {
            let child = Command::new(env!("CARGO_BIN_EXE_upkeep"))
                .args([
                    "backup",
                    &url,
                    "--repo",
                    repo_path.to_str().unwrap(),
                    "--jobs",
                    "2",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while files_under(&repo_path.join("chunks")) < 1 {
                assert!(Instant::now() < deadline, "the backup stored no chunk");
                std::thread::sleep(Duration::from_millis(5));
            }
            let sent = Command::new("kill")
                .args([format!("-{signal}"), child.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {err}");
        assert!(err.contains("upkeep: error:"), "SIG{signal}: {err}");
        assert_eq!(
            files_under(&repo.path().join("snapshots")),
            0,
            "SIG{signal} left a snapshot"
        );
    }
}

#[tokio::test]
async fn pg_connection_lost_during_backup_exits_1_without_a_snapshot() {
    let db = big_pg_table().await;
    let repo = tempfile::tempdir().unwrap();
    let url = db.target.secret_url().to_owned();
    let repo_path = repo.path().to_owned();
    let admin = db.target.clone();
    let child = std::thread::spawn(move || {
        Command::new(env!("CARGO_BIN_EXE_upkeep"))
            .args([
                "backup",
                &url,
                "--repo",
                repo_path.to_str().unwrap(),
                "--jobs",
                "2",
            ])
            .output()
            .unwrap()
    });
    // Wait for the first chunk, then drop the backup's sessions as a server restart would.
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_under(&repo.path().join("chunks")) < 1 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut conn = upkeep_db::Database::connect(&admin, upkeep_db::OpenMode::ReadWrite)
        .await
        .unwrap();
    conn.execute_script(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'upkeep' AND pid <> pg_backend_pid() AND datname = current_database()",
    )
    .await
    .unwrap();
    conn.close().await;
    let out = tokio::task::spawn_blocking(move || child.join().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("upkeep: error:") && err.contains("lost the connection"),
        "{err}"
    );
    assert_eq!(files_under(&repo.path().join("snapshots")), 0);
}

#[tokio::test]
async fn pg_server_stopped_during_backup_exits_1_without_a_snapshot() {
    // A server of this test's own, stopped for real (immediate shutdown) mid-backup.
    let mut server = upkeep_test_support::OwnPgServer::start();
    let target = upkeep_db::Target::parse(&server.url, None).unwrap();
    let mut conn = upkeep_db::Database::connect(&target, upkeep_db::OpenMode::ReadWrite)
        .await
        .unwrap();
    conn.execute_script(
        "CREATE TABLE events (id bigint PRIMARY KEY, payload text);
         INSERT INTO events SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, 400000) g;",
    )
    .await
    .unwrap();
    conn.close().await;
    let repo = tempfile::tempdir().unwrap();
    let (url, repo_path) = (server.url.clone(), repo.path().to_owned());
    let child = std::thread::spawn(move || {
        Command::new(env!("CARGO_BIN_EXE_upkeep"))
            .args([
                "backup",
                &url,
                "--repo",
                repo_path.to_str().unwrap(),
                "--jobs",
                "2",
            ])
            .output()
            .unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_under(&repo.path().join("chunks")) < 1 {
        assert!(Instant::now() < deadline, "the backup stored no chunk");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stop();
    let out = tokio::task::spawn_blocking(move || child.join().unwrap())
        .await
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("upkeep: error:"), "{err}");
    assert!(
        err.contains("127.0.0.1") && (err.contains("lost the connection") || err.contains("shut")),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert_eq!(files_under(&repo.path().join("snapshots")), 0);
}

#[test]
fn restore_of_a_missing_repository_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    let o = upkeep(&[
        "restore",
        "--repo",
        dir.path().join("nope").to_str().unwrap(),
        "--to",
        "x.db",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not an upkeep repository"));
}

#[tokio::test]
async fn sqlite_damaged_repository_verify_exits_3() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.load_kitchen_sink().await;
    let repo = tempfile::tempdir().unwrap();
    let path = db
        .target
        .sqlite_path()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let r = repo.path().to_str().unwrap();
    assert!(upkeep(&["backup", &path, "--repo", r, "-q"])
        .status
        .success());
    let chunk_dir = std::fs::read_dir(repo.path().join("chunks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let chunk = std::fs::read_dir(chunk_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&chunk).unwrap();
    let o = upkeep(&["verify", "--repo", r]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("is missing"), "{}", stdout(&o));
}

#[test]
fn config_file_names_databases_and_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    generate_small_db(&db);
    let cfg = dir.path().join("upkeep.toml");
    std::fs::write(
        &cfg,
        format!(
            "[databases.app]\nurl = \"sqlite://{}\"\n\n[repositories.nightly]\npath = \"{}\"\n",
            db.display(),
            dir.path().join("repo").display()
        ),
    )
    .unwrap();
    let o = upkeep(&[
        "backup",
        "app",
        "--repo",
        "nightly",
        "--config",
        cfg.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = upkeep(&[
        "snapshots",
        "--repo",
        "nightly",
        "--config",
        cfg.to_str().unwrap(),
        "--json",
    ]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let bad = upkeep(&[
        "snapshots",
        "--repo",
        "nightly",
        "--config",
        dir.path().join("none.toml").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

/// A small SQLite database, made with upkeep generate.
fn generate_small_db(path: &Path) -> std::process::Output {
    let o = upkeep(&["generate", path.to_str().unwrap(), "--rows", "200", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

#[tokio::test]
async fn metrics_file_says_success_and_failure_whatever_failed() {
    let sqlite = TestDb::new(Engine::Sqlite).await;
    sqlite
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);")
        .await;
    let db = sqlite.target.sqlite_path().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let prom = dir.path().join("upkeep.prom");
    let run = |database: &str, extra: &[&str]| {
        let mut args = vec![
            "backup",
            database,
            "--repo",
            repo.to_str().unwrap(),
            "--metrics-file",
            prom.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = upkeep(&args);
        (out, std::fs::read_to_string(&prom).unwrap_or_default())
    };
    let (ok, text) = run(db.to_str().unwrap(), &[]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    for name in [
        "upkeep_backup_success{",
        "upkeep_backup_duration_seconds{",
        "upkeep_backup_rows{",
        "upkeep_backup_bytes_read{",
        "upkeep_backup_bytes_stored{",
        "upkeep_backup_last_success_timestamp_seconds{",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("upkeep_backup_success{") && l.ends_with(" 1")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("upkeep_backup_rows{") && l.ends_with(" 3")),
        "{text}"
    );

    let last_success = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("upkeep_backup_last_success_timestamp_seconds{"))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    let succeeded = last_success(&text);
    assert!(succeeded.is_some(), "{text}");
    // A failure rewrites the file and keeps the last success's time.
    std::fs::write(&prom, text.replace("upkeep_backup_rows", "stale_line")).unwrap();
    let (unreachable, text) = run("postgres://app:s3cr3t@127.0.0.1:1/shop", &[]);
    assert_eq!(last_success(&text), succeeded, "{text}");
    assert!(!text.contains("stale_line"), "{text}");
    assert_eq!(
        unreachable.status.code(),
        Some(4),
        "{}",
        stderr(&unreachable)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("upkeep_backup_success{") && l.ends_with(" 0")),
        "{text}"
    );
    assert!(!text.contains("s3cr3t"), "{text}");

    let (no_file, text) = run(
        "postgres://app@127.0.0.1:1/shop",
        &["--password-file", "/nonexistent/pw"],
    );
    assert_eq!(no_file.status.code(), Some(5), "{}", stderr(&no_file));
    assert!(
        text.lines()
            .any(|l| l.starts_with("upkeep_backup_success{") && l.ends_with(" 0")),
        "{text}"
    );
}

#[tokio::test]
async fn restore_of_an_unknown_snapshot_exits_5_and_an_ambiguous_prefix_2() {
    let sqlite = TestDb::new(Engine::Sqlite).await;
    sqlite
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = sqlite
        .target
        .sqlite_path()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let made = upkeep(&["backup", &src, "--repo", repo.to_str().unwrap()]);
    assert!(made.status.success(), "{}", stderr(&made));
    let to = dir.path().join("copy.db");
    let o = upkeep(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        "nosuchsnapshot",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("snapshot nosuchsnapshot not found"),
        "{}",
        stderr(&o)
    );
    assert!(!to.exists() || std::fs::metadata(&to).unwrap().len() == 0);

    // A prefix two snapshots share names both and asks for more (exit 2, a usage error).
    let again = upkeep(&["backup", &src, "--repo", repo.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    let mut ids: Vec<String> = std::fs::read_dir(repo.join("snapshots"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.trim_end_matches(".json").to_owned()
        })
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 2);
    let common: String = ids[0]
        .chars()
        .zip(ids[1].chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let o = upkeep(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        &common,
        "--to",
        to.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ambiguous") && err.contains(&ids[0]) && err.contains(&ids[1]),
        "{err}"
    );
    assert!(!to.exists() || std::fs::metadata(&to).unwrap().len() == 0);
}

fn modes_under(dir: &Path, out: &mut Vec<(String, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        out.push((p.display().to_string(), mode));
        if p.is_dir() {
            modes_under(&p, out);
        }
    }
}

/// A repository holds a customer's rows: its folders are 0700 and its files 0600 whatever
/// the umask; the metrics file stays readable by the exporter. A repository that cannot be
/// written exits 6 (permission), naming it.
#[tokio::test]
async fn sqlite_repository_is_private_and_a_read_only_one_exits_6() {
    use std::os::unix::fs::PermissionsExt;
    let sqlite = TestDb::new(Engine::Sqlite).await;
    sqlite
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'x');")
        .await;
    let db = sqlite.target.sqlite_path().unwrap().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let prom = dir.path().join("upkeep.prom");
    let script = format!(
        "umask 000; exec {} backup {db} --repo {} --metrics-file {} -q",
        env!("CARGO_BIN_EXE_upkeep"),
        repo.display(),
        prom.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut modes = vec![(
        repo.display().to_string(),
        std::fs::metadata(&repo).unwrap().permissions().mode() & 0o777,
    )];
    modes_under(&repo, &mut modes);
    assert!(modes.len() > 4, "{modes:?}");
    for (path, mode) in &modes {
        let private = if Path::new(path).is_dir() {
            0o700
        } else {
            0o600
        };
        assert_eq!(*mode, private, "{path} is {mode:o}");
    }
    let prom_mode = std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777;
    assert_eq!(prom_mode, 0o644);

    // Read-only: a read-only mount for root (which ignores modes), modes for others.
    let upkeep_bin = env!("CARGO_BIN_EXE_upkeep");
    let backup = format!("{upkeep_bin} backup {db} --repo {}", repo.display());
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let out = if root {
        let r = repo.display();
        Command::new("unshare")
            .args([
                "--mount",
                "sh",
                "-c",
                &format!("mount --bind {r} {r} && mount -o remount,bind,ro {r} && exec {backup}"),
            ])
            .output()
            .unwrap()
    } else {
        Command::new("chmod")
            .args(["-R", "a-w"])
            .arg(&repo)
            .status()
            .unwrap();
        Command::new("sh").args(["-c", &backup]).output().unwrap()
    };
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("repository {}", repo.display()))
            && (err.contains("Read-only file system") || err.contains("Permission denied")),
        "{err}"
    );
    // One cause, printed once.
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}
