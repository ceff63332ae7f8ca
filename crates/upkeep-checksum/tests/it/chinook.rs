//! Chinook's digests agree across its engines where names and types correspond (the dataset's
//! README lists the genuine differences between its copies).

use upkeep_core::Engine;
use upkeep_test_support::TestDb;

use crate::checksum;

/// PascalCase (SQLite, MySQL) to the PostgreSQL script's snake_case.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[tokio::test]
async fn pg_chinook_digests_equal_sqlite_where_the_copies_agree() {
    let sqlite = TestDb::new(Engine::Sqlite).await;
    sqlite.load_chinook().await;
    let pg = TestDb::new(Engine::Postgres).await;
    pg.load_chinook().await;
    let a = checksum(&sqlite.target, |_| {}).await;
    let b = checksum(&pg.target, |o| o.jobs = 2).await;
    assert_eq!(a.tables.len(), 11);
    assert_eq!(b.tables.len(), 11);
    let mut same = Vec::new();
    for t in &a.tables {
        let other = b
            .tables
            .iter()
            .find(|p| p.table == snake(&t.table))
            .unwrap_or_else(|| panic!("{}", t.table));
        assert_eq!(t.rows, other.rows, "{}", t.table);
        if t.digest == other.digest {
            same.push(t.table.as_str());
        }
    }
    same.sort_unstable();
    // customer and invoice differ: customer 54's city has a trailing space in SQLite only.
    assert_eq!(
        same,
        [
            "Album",
            "Artist",
            "Employee",
            "Genre",
            "InvoiceLine",
            "MediaType",
            "Playlist",
            "PlaylistTrack",
            "Track"
        ]
    );
}

#[tokio::test]
async fn mysql_chinook_digests_equal_sqlite_where_the_copies_agree() {
    let sqlite = TestDb::new(Engine::Sqlite).await;
    sqlite.load_chinook().await;
    let my = TestDb::new(Engine::Mysql).await;
    my.load_chinook().await;
    let a = checksum(&sqlite.target, |_| {}).await;
    let b = checksum(&my.target, |o| o.jobs = 2).await;
    let mut same = Vec::new();
    for t in &a.tables {
        let other = b
            .tables
            .iter()
            .find(|p| p.table == t.table)
            .unwrap_or_else(|| panic!("{}", t.table));
        assert_eq!(t.rows, other.rows, "{}", t.table);
        if t.digest == other.digest {
            same.push(t.table.as_str());
        }
    }
    same.sort_unstable();
    // track differs: the MySQL script drops four backslashes.
    assert_eq!(
        same,
        [
            "Album",
            "Artist",
            "Customer",
            "Employee",
            "Genre",
            "Invoice",
            "InvoiceLine",
            "MediaType",
            "Playlist",
            "PlaylistTrack"
        ]
    );
}
