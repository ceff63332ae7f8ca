//! Bad input gets a named error of the right kind, and no password in its message.

use std::sync::Arc;

use upkeep_checksum::{ChecksumError, ChecksumOptions};
use upkeep_core::{Engine, NoProgress};
use upkeep_db::{DbError, ErrorKind, Target};
use upkeep_test_support::{server_url, TestDb};

async fn checksum_err(
    target: Target,
    configure: impl FnOnce(&mut ChecksumOptions),
) -> ChecksumError {
    let mut options = ChecksumOptions::new(target);
    configure(&mut options);
    match upkeep_checksum::run(options, Arc::new(NoProgress), Default::default()).await {
        Ok(r) => panic!(
            "expected an error, got a report of {} tables",
            r.tables.len()
        ),
        Err(e) => e,
    }
}

fn url_with(engine: Engine, user: &str, password: Option<&str>, database: &str) -> String {
    let mut url = url_parse(&server_url(engine));
    url.0 = user.to_owned();
    format!(
        "{}://{}{}@{}/{}",
        if engine == Engine::Postgres {
            "postgres"
        } else {
            "mysql"
        },
        url.0,
        password.map(|p| format!(":{p}")).unwrap_or_default(),
        url.1,
        database
    )
}

/// (user, host:port) of a server URL.
fn url_parse(url: &str) -> (String, String) {
    let rest = url.split_once("://").unwrap().1;
    let (auth, hostpath) = rest.rsplit_once('@').unwrap_or(("", rest));
    let host = hostpath.split('/').next().unwrap();
    (auth.split(':').next().unwrap().to_owned(), host.to_owned())
}

#[tokio::test]
async fn unknown_scheme_is_a_usage_error() {
    let e = Target::parse("redis://localhost/0", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(e.to_string().contains("redis://localhost/0"), "{e}");
    let e = Target::parse("backup.tar", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
}

#[tokio::test]
async fn pg_unreachable_host_is_a_connect_error() {
    // Port 1 on loopback: nothing listens there.
    let target = Target::parse("postgres://u:hunter2@127.0.0.1:1/db", None).unwrap();
    let e = checksum_err(target, |_| {}).await;
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("cannot reach postgres://u:***@127.0.0.1:1/db"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"));
}

#[tokio::test]
async fn mysql_unreachable_host_is_a_connect_error() {
    let target = Target::parse("mysql://root:hunter2@127.0.0.1:1/db", None).unwrap();
    let e = checksum_err(target, |_| {}).await;
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(!e.to_string().contains("hunter2"));
}

#[tokio::test]
async fn pg_wrong_password_is_refused() {
    let db = TestDb::new(Engine::Postgres).await;
    db.execute(
        "DO $$ BEGIN CREATE ROLE upkeep_auth_test LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         ALTER ROLE upkeep_auth_test PASSWORD 'right-pw';",
    )
    .await;
    let name = db.target.database().unwrap().to_owned();
    let good = Target::parse(
        &url_with(
            Engine::Postgres,
            "upkeep_auth_test",
            Some("right-pw"),
            &name,
        ),
        None,
    )
    .unwrap();
    // The right password works (the server checks passwords for this role)…
    upkeep_db::Database::connect(&good, upkeep_db::OpenMode::ReadOnly)
        .await
        .unwrap()
        .close()
        .await;
    // …and a wrong one is refused, by name, without echoing it.
    let bad = Target::parse(
        &url_with(
            Engine::Postgres,
            "upkeep_auth_test",
            Some("wrong-pw"),
            &name,
        ),
        None,
    )
    .unwrap();
    let e = checksum_err(bad, |_| {}).await;
    assert!(
        matches!(e, ChecksumError::Db(DbError::AuthFailed { .. })),
        "{e}"
    );
    assert!(!e.to_string().contains("wrong-pw"), "{e}");
}

#[tokio::test]
async fn mysql_wrong_password_is_refused() {
    let db = TestDb::new(Engine::Mysql).await;
    let name = db.target.database().unwrap().to_owned();
    let user = format!("upk_{}", &name[name.len() - 8..]);
    db.execute(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'right-pw';\nGRANT SELECT ON `{name}`.* TO '{user}'@'%';"
    ))
    .await;
    let bad = Target::parse(
        &url_with(Engine::Mysql, &user, Some("wrong-pw"), &name),
        None,
    )
    .unwrap();
    let e = checksum_err(bad, |_| {}).await;
    assert!(
        matches!(e, ChecksumError::Db(DbError::AuthFailed { .. })),
        "{e}"
    );
    assert!(!e.to_string().contains("wrong-pw"));
    let good = Target::parse(
        &url_with(Engine::Mysql, &user, None, &name),
        Some("right-pw"),
    )
    .unwrap();
    upkeep_db::Database::connect(&good, upkeep_db::OpenMode::ReadOnly)
        .await
        .unwrap()
        .close()
        .await;
    db.execute(&format!("DROP USER '{user}'@'%';")).await;
}

#[tokio::test]
async fn pg_missing_database_is_named() {
    let url = server_url(Engine::Postgres);
    let target = Target::parse(&url, None)
        .unwrap()
        .with_database("upkeep_no_such_db")
        .unwrap();
    let e = checksum_err(target, |_| {}).await;
    assert!(
        matches!(&e, ChecksumError::Db(DbError::DatabaseNotFound { database, .. }) if database == "upkeep_no_such_db"),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn mysql_missing_database_is_named() {
    let target = Target::parse(&server_url(Engine::Mysql), None)
        .unwrap()
        .with_database("upkeep_no_such_db")
        .unwrap();
    let e = checksum_err(target, |_| {}).await;
    assert!(
        matches!(&e, ChecksumError::Db(DbError::DatabaseNotFound { .. })),
        "{e}"
    );
}

#[tokio::test]
async fn pg_missing_table_is_named() {
    let db = TestDb::new(Engine::Postgres).await;
    db.execute("CREATE TABLE present (id int PRIMARY KEY)")
        .await;
    let e = checksum_err(db.target.clone(), |o| {
        o.include = vec!["present".into(), "absent".into()]
    })
    .await;
    assert!(
        matches!(&e, ChecksumError::Db(DbError::TableNotFound { table, .. }) if table == "absent"),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = checksum_err(db.target.clone(), |o| o.include = vec!["abs*".into()]).await;
    assert!(matches!(e, ChecksumError::NoTables { .. }), "{e}");
}

#[tokio::test]
async fn pg_permission_denied_is_named() {
    let db = TestDb::new(Engine::Postgres).await;
    let name = db.target.database().unwrap().to_owned();
    let role = format!("upk_noperm_{}", &name[name.len() - 6..]);
    db.execute(&format!(
        "CREATE TABLE secret (id int PRIMARY KEY); CREATE ROLE {role} LOGIN; REVOKE ALL ON secret FROM PUBLIC;"
    ))
    .await;
    let target = Target::parse(&url_with(Engine::Postgres, &role, None, &name), None).unwrap();
    let e = checksum_err(target, |_| {}).await;
    assert!(
        matches!(e, ChecksumError::Db(DbError::PermissionDenied { .. })),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Permission);
}

#[tokio::test]
async fn mysql_permission_denied_is_named() {
    let db = TestDb::new(Engine::Mysql).await;
    let name = db.target.database().unwrap().to_owned();
    let user = format!("upk_np_{}", &name[name.len() - 8..]);
    db.execute(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw';"))
        .await;
    let target = Target::parse(&url_with(Engine::Mysql, &user, Some("pw"), &name), None).unwrap();
    let e = checksum_err(target, |_| {}).await;
    assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
    db.execute(&format!("DROP USER '{user}'@'%';")).await;
}

#[tokio::test]
async fn sqlite_file_that_is_not_a_database_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(
        &path,
        b"this is a text file, not a database at all, and long enough to have a header",
    )
    .unwrap();
    let e = checksum_err(Target::sqlite(&path), |_| {}).await;
    assert!(
        matches!(e, ChecksumError::Db(DbError::NotADatabase { .. })),
        "{e}"
    );
    let e = checksum_err(Target::sqlite(&dir.path().join("missing.db")), |_| {}).await;
    assert!(
        matches!(e, ChecksumError::Db(DbError::FileNotFound { .. })),
        "{e}"
    );
    assert!(
        !dir.path().join("missing.db").exists(),
        "a read must not create the file"
    );
}
