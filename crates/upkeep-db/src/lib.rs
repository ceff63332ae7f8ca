//! Engine adapters of upkeep: PostgreSQL, MySQL/MariaDB and SQLite behind one interface.
//!
//! - [`Target`]: a parsed, redactable connection URL.
//! - [`Database`]: one connection: introspect into the neutral [`upkeep_core::Schema`], run
//!   scripts, write canonical batches by each engine's fast path.
//! - [`Snapshot`]: a consistent read shared by N worker sessions; [`scan`] reads planned key
//!   ranges in parallel into [`BatchSink`]s with bounded memory.
//!
//! ```no_run
//! # async fn f() -> Result<(), upkeep_db::DbError> {
//! use upkeep_db::{Snapshot, Target};
//! let target = Target::parse("postgres://postgres@localhost/shop", None)?;
//! let snapshot = Snapshot::open(&target, 2).await?;
//! println!("{} tables", snapshot.schema().tables.len());
//! # Ok(()) }
//! ```

mod database;
pub mod ddl;
mod digest_sink;
mod error;
mod mysql;
mod native;
mod objects;
mod pg;
pub mod pg_post;
mod plan;
pub mod quote;
mod scan;
mod sqlite;
mod target;

pub use database::{BulkLoad, Database, Planned, Snapshot};
pub use digest_sink::{digest_tables, DigestSink};
pub use error::{DbError, ErrorKind};
pub use native::NativeDdl;
pub use objects::{acl_roles, drop_statement};
pub use plan::PlanOptions;
pub use scan::{scan, BatchSink, ScanError, ScanOptions, ScanTask};
pub use target::{read_password_file, OpenMode, Target};

use std::time::Duration;

/// How long to wait for a server to accept a connection (`UPKEEP_CONNECT_TIMEOUT`, seconds).
fn connect_timeout() -> Duration {
    let secs = std::env::var("UPKEEP_CONNECT_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

async fn with_connect_timeout<F: std::future::Future>(
    target: &Target,
    f: F,
) -> Result<F::Output, DbError> {
    let limit = connect_timeout();
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| DbError::Unreachable {
            target: target.display().to_owned(),
            reason: format!("no answer within {} s", limit.as_secs()),
        })
}

/// Splits a SQL script into statements at `;` that end a line (scripts we write and ship
/// follow that rule; it keeps `;` inside string literals and bodies intact).
fn split_statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, line) in sql.split_inclusive('\n').scan(0usize, |pos, l| {
        let at = *pos;
        *pos += l.len();
        Some((at, l))
    }) {
        if line.trim_end().ends_with(';') {
            let end = i + line.trim_end().len() - 1;
            let stmt = sql[start..end].trim();
            if !stmt.is_empty() && !is_comment_only(stmt) {
                out.push(stmt);
            }
            start = i + line.len();
        }
    }
    let rest = sql[start..].trim();
    if !rest.is_empty() && !is_comment_only(rest) {
        out.push(rest);
    }
    out
}

fn is_comment_only(stmt: &str) -> bool {
    stmt.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with("--")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn scripts_split_at_line_end_semicolons() {
        let s = "-- c\nCREATE TABLE a (x int);\nINSERT INTO a VALUES ('x;y'),\n ('z');\n-- end\n";
        assert_eq!(
            super::split_statements(s),
            vec![
                "-- c\nCREATE TABLE a (x int)",
                "INSERT INTO a VALUES ('x;y'),\n ('z')"
            ]
        );
    }
}
