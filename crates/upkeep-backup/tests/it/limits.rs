//! Values near a server's limits: a restore into MariaDB cuts its statements to fit
//! `max_allowed_packet`, and a row that cannot fit is named with the setting to raise.

use upkeep_core::Engine;
use upkeep_db::Target;
use upkeep_test_support::{OwnMyServer, TestDb};

use crate::{backup, restore};

#[tokio::test]
async fn mariadb_restore_fits_max_allowed_packet_or_names_it() {
    let source = TestDb::new(Engine::Sqlite).await;
    // 300 rows of 100 kB (250 of them in one prepared INSERT would be 25 MB) and one of 3 MB,
    // which fits a packet of 4 MB alone; 5 MB does not.
    source
        .execute(
            "CREATE TABLE wide (id INTEGER PRIMARY KEY, body BLOB);
             WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 300)
             INSERT INTO wide SELECT g, randomblob(100000) FROM s;
             INSERT INTO wide VALUES (301, randomblob(3000000));
             CREATE TABLE huge (id INTEGER PRIMARY KEY, body BLOB);
             INSERT INTO huge VALUES (1, randomblob(5000000));",
        )
        .await;
    let repo = tempfile::tempdir().unwrap();
    backup(&source.target, repo.path()).await;
    let server = OwnMyServer::start_with(&["--max-allowed-packet=4M"]);
    let admin = Target::parse(&server.url, None).unwrap();
    let mut db = upkeep_db::Database::connect(&admin, upkeep_db::OpenMode::ReadWrite)
        .await
        .unwrap();
    db.execute_script("CREATE DATABASE a; CREATE DATABASE b")
        .await
        .unwrap();
    db.close().await;

    let wide = restore(repo.path(), &admin.with_database("a").unwrap(), |o| {
        o.include = vec!["wide".into()];
    })
    .await;
    assert!(wide.data_verified);
    // SQLite's INTEGER PRIMARY KEY assigns ids; the MariaDB table does not: named.
    assert!(
        matches!(&wide.schema[..], [c] if matches!(&c.status, upkeep_core::ObjectStatus::Weakened { detail } if detail.contains("identity of id"))),
        "{:?}",
        wide.schema
    );
    assert_eq!(wide.total_rows, 301);

    let mut options = upkeep_backup::RestoreOptions::new(
        repo.path().to_owned(),
        admin.with_database("b").unwrap(),
    );
    options.include = vec!["huge".into()];
    let err = upkeep_backup::restore(options, Default::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("table huge") && text.contains("max_allowed_packet (4194304)"),
        "{text}"
    );
}
