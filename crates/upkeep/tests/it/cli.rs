//! Exit codes, one-line errors, redaction and output formats of `upkeep checksum`.

use upkeep_core::Engine;
use upkeep_test_support::TestDb;

use crate::{stderr, stdout, upkeep, upkeep_env};

#[test]
fn help_has_examples_and_exit_codes() {
    let o = upkeep(&["checksum", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    assert!(help.contains("Examples:"), "{help}");
    assert!(help.contains("--tables"));
    let o = upkeep(&["--help"]);
    assert!(stdout(&o).contains("Exit codes:"));
}

#[test]
fn bad_arguments_exit_2() {
    let o = upkeep(&["checksum"]);
    assert_eq!(o.status.code(), Some(2));
    let o = upkeep(&["checksum", "x.db", "--jobs", "0"]);
    assert_eq!(o.status.code(), Some(2));
    for mb in ["0", "lots"] {
        let o = upkeep(&[
            "restore",
            "--repo",
            "r",
            "--to",
            "x.db",
            "--maintenance-work-mem",
            mb,
        ]);
        assert_eq!(o.status.code(), Some(2), "{mb}");
        assert!(
            stderr(&o).contains("--maintenance-work-mem"),
            "{}",
            stderr(&o)
        );
    }
}

fn one_line_error(o: &std::process::Output) -> String {
    let err = stderr(o);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("upkeep: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line in {err:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        stdout(o).is_empty(),
        "nothing on stdout on error: {}",
        stdout(o)
    );
    lines[0].to_owned()
}

#[test]
fn unsupported_url_exits_2() {
    let o = upkeep(&["checksum", "redis://cache:6379/0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(one_line_error(&o).contains("unsupported connection URL redis://cache:6379/0"));
}

#[test]
fn pg_unreachable_server_exits_4_without_the_password() {
    let o = upkeep(&["checksum", "postgres://app:s3cr3t-pw@127.0.0.1:1/shop"]);
    assert_eq!(o.status.code(), Some(4));
    let line = one_line_error(&o);
    assert!(
        line.contains("postgres://app:***@127.0.0.1:1/shop"),
        "{line}"
    );
    assert!(!stderr(&o).contains("s3cr3t-pw"));
}

#[test]
fn mysql_password_from_env_is_used_and_never_printed() {
    let o = upkeep_env(
        &["checksum", "mysql://app@127.0.0.1:1/shop"],
        &[("UPKEEP_PASSWORD", "env-s3cret")],
    );
    assert_eq!(o.status.code(), Some(4));
    let line = one_line_error(&o);
    assert!(line.contains("mysql://app@127.0.0.1:1/shop"), "{line}");
    assert!(!stderr(&o).contains("env-s3cret"));
}

#[test]
fn missing_password_file_exits_5() {
    let o = upkeep(&[
        "checksum",
        "postgres://app@127.0.0.1:1/shop",
        "--password-file",
        "/nonexistent/pw",
    ]);
    assert_eq!(o.status.code(), Some(5));
    assert!(one_line_error(&o).contains("/nonexistent/pw"));
}

#[test]
fn sqlite_missing_file_and_non_database_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let o = upkeep(&["checksum", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5));
    assert!(one_line_error(&o).contains("does not exist"));
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let o = upkeep(&["checksum", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5));
    assert!(one_line_error(&o).contains("is not a SQLite database"));
}

#[tokio::test]
async fn pg_missing_table_exits_5_naming_it() {
    let db = TestDb::new(Engine::Postgres).await;
    db.execute("CREATE TABLE orders (id int PRIMARY KEY)").await;
    let url = db.target.secret_url().to_owned();
    let o = tokio::task::spawn_blocking(move || {
        upkeep(&["checksum", &url, "--tables", "orders", "ordres"])
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(5));
    assert!(
        one_line_error(&o).contains("table ordres not found"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn mysql_missing_database_exits_5() {
    let target = upkeep_db::Target::parse(&upkeep_test_support::server_url(Engine::Mysql), None)
        .unwrap()
        .with_database("upkeep_nope")
        .unwrap();
    let url = target.secret_url().to_owned();
    let o = tokio::task::spawn_blocking(move || upkeep(&["checksum", &url]))
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(5));
    assert!(one_line_error(&o).contains("database \"upkeep_nope\" does not exist"));
}

#[tokio::test]
async fn sqlite_json_report_carries_the_reference_digests() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.load_kitchen_sink().await;
    let path = db
        .target
        .sqlite_path()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let o = upkeep(&["checksum", &path, "--json", "--chunks"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON only");
    for (name, rows, digest) in TestDb::kitchen_sink_expected() {
        let t = report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name.as_str())
            .unwrap();
        assert_eq!(t["rows"], rows);
        assert_eq!(t["digest"], digest.as_str());
        assert!(t["chunks"].is_array());
    }
    assert_eq!(report["engine"], "sqlite");
    // Warnings go to stderr as logs, not into stdout.
    assert!(stderr(&o).contains("no_key"), "{}", stderr(&o));

    let md = upkeep(&[
        "checksum", &path, "--format", "markdown", "--tables", "numbers",
    ]);
    assert!(md.status.success());
    assert!(
        stdout(&md).contains("| numbers | 2,000 | v1:2000:"),
        "{}",
        stdout(&md)
    );
    let text = upkeep(&["checksum", &path, "--tables", "empty_table"]);
    let line = stdout(&text).lines().nth(1).unwrap_or_default().to_owned();
    let cells: Vec<&str> = line.split_whitespace().collect();
    let empty = format!("v1:0:{}", "0".repeat(64));
    assert_eq!(
        cells,
        ["empty_table", "0", empty.as_str()],
        "{}",
        stdout(&text)
    );
    let quiet = upkeep(&["checksum", &path, "-q", "--json"]);
    assert!(
        stderr(&quiet).is_empty(),
        "-q keeps stderr quiet: {}",
        stderr(&quiet)
    );
}

#[tokio::test]
async fn mysql_password_comes_from_the_file_else_the_environment() {
    let db = upkeep_test_support::TestDb::new(upkeep_core::Engine::Mysql).await;
    let name = db.target.database().unwrap().to_owned();
    let user = format!("upk_pw_{}", &name[name.len() - 8..]);
    db.execute(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'right-pw';\nCREATE TABLE t (id int PRIMARY KEY);\nGRANT SELECT ON `{name}`.* TO '{user}'@'%';"
    ))
    .await;
    let server = upkeep_test_support::server_url(upkeep_core::Engine::Mysql);
    let host = server
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .unwrap()
        .to_owned();
    let url = format!("mysql://{user}@{host}/{name}");
    let dir = tempfile::tempdir().unwrap();
    let right_file = dir.path().join("pw");
    std::fs::write(&right_file, "right-pw\nnot this line\n").unwrap();
    let (url2, file) = (url.clone(), right_file.to_str().unwrap().to_owned());
    let (by_env, wrong_env, file_over_env) = tokio::task::spawn_blocking(move || {
        (
            upkeep_env(&["checksum", &url2], &[("UPKEEP_PASSWORD", "right-pw")]),
            upkeep_env(&["checksum", &url2], &[("UPKEEP_PASSWORD", "wrong-pw")]),
            upkeep_env(
                &["checksum", &url2, "--password-file", &file],
                &[("UPKEEP_PASSWORD", "wrong-pw")],
            ),
        )
    })
    .await
    .unwrap();
    db.execute(&format!("DROP USER '{user}'@'%';")).await;
    assert_eq!(by_env.status.code(), Some(0), "{}", stderr(&by_env));
    assert_eq!(wrong_env.status.code(), Some(4), "{}", stderr(&wrong_env));
    assert!(
        one_line_error(&wrong_env).contains("authentication failed"),
        "{}",
        stderr(&wrong_env)
    );
    assert!(!stderr(&wrong_env).contains("wrong-pw"));
    assert_eq!(
        file_over_env.status.code(),
        Some(0),
        "the file wins over the environment: {}",
        stderr(&file_over_env)
    );
    // The file is readable by others (umask 022): a warning says so.
    assert!(
        stderr(&file_over_env).contains("is readable by group or others"),
        "{}",
        stderr(&file_over_env)
    );
}

/// A password holding '@', '/' and '?' unencoded connects, is never printed, and is
/// overwritten in the process's command line, which `ps` shows to every local user.
#[tokio::test]
async fn mysql_an_unencoded_password_connects_and_is_hidden_from_ps() {
    let db = upkeep_test_support::TestDb::new(upkeep_core::Engine::Mysql).await;
    let name = db.target.database().unwrap().to_owned();
    let user = format!("upk_at_{}", &name[name.len() - 8..]);
    db.execute(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'p@ss/w0rd?x';\nCREATE TABLE t (id int PRIMARY KEY);\nGRANT SELECT ON `{name}`.* TO '{user}'@'%';"
    ))
    .await;
    let server = upkeep_test_support::server_url(upkeep_core::Engine::Mysql);
    let host = server
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .unwrap()
        .to_owned();
    let url = format!("mysql://{user}:p@ss/w0rd?x@{host}/{name}");
    let o = tokio::task::spawn_blocking(move || upkeep(&["checksum", &url]))
        .await
        .unwrap();
    db.execute(&format!("DROP USER '{user}'@'%';")).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains("w0rd") && !stderr(&o).contains("w0rd"));

    // A server that accepts and never answers keeps upkeep waiting while ps looks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_upkeep"))
        .args([
            "checksum",
            &format!("postgres://app:s3cr3t-pw@127.0.0.1:{port}/db"),
        ])
        .env("UPKEEP_CONNECT_TIMEOUT", "10")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _conn = silent.accept().unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(!cmdline.contains("s3cr3t"), "{cmdline}");
    assert!(cmdline.contains("app:xxxxxxxxx@127.0.0.1"), "{cmdline}");
}

#[test]
fn urls_without_a_host_or_a_path_exit_2() {
    for (url, why) in [
        ("postgres://u@/db", "empty host"),
        ("sqlite://", "no file path"),
    ] {
        let o = upkeep(&["checksum", url]);
        assert_eq!(o.status.code(), Some(2), "{url}: {}", stderr(&o));
        let line = one_line_error(&o);
        assert!(
            line.contains("invalid connection URL") && line.contains(why),
            "{line}"
        );
    }
}

#[test]
fn completions_and_manual_pages_come_from_the_cli() {
    let o = upkeep(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("upkeep") && stdout(&o).contains("--full-every"));
    let o = upkeep(&["manpage"]);
    assert!(stdout(&o).starts_with(".ie") && stdout(&o).contains("restore"));
    let o = upkeep(&["manpage", "backup"]);
    assert!(stdout(&o).contains(".TH upkeep-backup 1"), "{}", stdout(&o));
    let o = upkeep(&["manpage", "nope"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A reader that stops early (`| head`) is no error: exit 0, nothing on stderr, as ripgrep.
/// `-q` prints no report, unless --json asks for one.
#[test]
fn a_closed_pipe_exits_0_and_quiet_prints_no_report() {
    let chinook = upkeep_test_support::fixtures_dir().join("chinook/Chinook_Sqlite.sqlite");
    let script = format!(
        "{} checksum {} --chunks --chunk-rows 1 --json | head -c 100 >/dev/null; \
         echo \"status=${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_upkeep"),
        chinook.display()
    );
    let o = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("status=0"),
        "{} {}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(stderr(&o), "");

    let db = chinook.to_str().unwrap();
    let quiet = upkeep(&["checksum", db, "-q"]);
    assert!(quiet.status.success());
    assert_eq!(stdout(&quiet), "");
    let json = upkeep(&["checksum", db, "-q", "--json"]);
    assert!(stdout(&json).contains("\"tables\""));
}
