//! MySQL and MariaDB: connect, introspect, read through the text protocol, write with
//! multi-row INSERTs.

mod ddl;
mod introspect;
mod read;
mod write;

pub(crate) use ddl::native_ddl;
pub(crate) use introspect::introspect;
pub(crate) use read::{read_chunk, text};
pub(crate) use write::write_batch;

use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection, Executor, Row};

pub(crate) use crate::error::sqlx_err as err;
use crate::{DbError, Target};

/// Session settings: UTC so TIMESTAMP reads the stored instant, utf8mb4 for all text.
const SESSION_SETTINGS: &str = "SET time_zone = '+00:00', NAMES utf8mb4, \
     SESSION net_read_timeout = 3600, SESSION net_write_timeout = 3600";

pub(crate) async fn connect(target: &Target) -> Result<MySqlConnection, DbError> {
    if target.database().is_none() {
        return Err(DbError::InvalidUrl {
            target: target.display().to_owned(),
            reason: "the URL names no database (mysql://user@host/DATABASE)".into(),
        });
    }
    let opts = MySqlConnectOptions::from_str(target.secret_url())
        .map_err(err(target, "connecting"))?
        .charset("utf8mb4")
        .disable_statement_logging();
    let mut conn = crate::with_connect_timeout(target, opts.connect())
        .await?
        .map_err(err(target, "connecting"))?;
    conn.execute(SESSION_SETTINGS)
        .await
        .map_err(err(target, "setting up the session"))?;
    Ok(conn)
}

pub(crate) async fn server_version(
    conn: &mut MySqlConnection,
    target: &Target,
) -> Result<String, DbError> {
    let row = conn
        .fetch_one("SELECT VERSION()")
        .await
        .map_err(err(target, "reading the server version"))?;
    Ok(read::text(&row, 0).unwrap_or_default())
}

/// Takes a global read lock so that the workers' snapshots can start at one point.
/// Returns false when the user lacks the RELOAD privilege; the caller then warns.
pub(crate) async fn lock_for_snapshot(
    conn: &mut MySqlConnection,
    target: &Target,
) -> Result<bool, DbError> {
    conn.execute("SET SESSION lock_wait_timeout = 60")
        .await
        .map_err(err(target, "locking"))?;
    match conn.execute("FLUSH TABLES WITH READ LOCK").await {
        Ok(_) => Ok(true),
        Err(e) => match DbError::from_sqlx(
            e,
            target.display(),
            target.database(),
            "FLUSH TABLES WITH READ LOCK",
        ) {
            DbError::PermissionDenied { .. } => Ok(false),
            other => Err(other),
        },
    }
}

pub(crate) async fn unlock(conn: &mut MySqlConnection, target: &Target) -> Result<(), DbError> {
    conn.execute("UNLOCK TABLES")
        .await
        .map_err(err(target, "unlocking"))
        .map(|_| ())
}

pub(crate) async fn begin_snapshot(
    conn: &mut MySqlConnection,
    target: &Target,
) -> Result<(), DbError> {
    conn.execute(
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
         START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    )
    .await
    .map_err(err(target, "starting the snapshot transaction"))
    .map(|_| ())
}

/// The binary log position of the snapshot, when the server logs and lets us see it.
pub(crate) async fn binlog_position(conn: &mut MySqlConnection) -> Option<String> {
    let row = conn.fetch_optional("SHOW MASTER STATUS").await.ok()??;
    let file = read::text(&row, 0)?;
    let pos = row
        .try_get_unchecked::<Option<u64>, _>(1)
        .ok()
        .flatten()
        .map(|p| p.to_string())
        .or_else(|| read::text(&row, 1))?;
    Some(format!("{file}:{pos}"))
}

pub(crate) async fn execute_script(
    conn: &mut MySqlConnection,
    target: &Target,
    sql: &str,
) -> Result<(), DbError> {
    for stmt in crate::split_statements(sql) {
        conn.execute(stmt)
            .await
            .map_err(err(target, "running SQL"))?;
    }
    Ok(())
}

pub(crate) async fn close(conn: MySqlConnection) {
    let _ = conn.close().await;
}
