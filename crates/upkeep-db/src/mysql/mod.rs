//! MySQL and MariaDB: connect, introspect, read through the text protocol, write with
//! prepared multi-row INSERTs.

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

/// MariaDB's change detection, taken before the snapshot starts: the server's identity and
/// the time before which every transaction the snapshot may miss had not yet started.
///
/// InnoDB stamps a table with the start time of the last transaction that changed it
/// (`information_schema.TABLES.UPDATE_TIME`, whole seconds, kept in memory only). A change
/// a snapshot does not see is committed after it starts, by a transaction that was running
/// when this is read (listed in `INNODB_TRX` with its start) or that starts later. So a
/// table stamped before the earliest of those starts and of now holds, after the snapshot
/// starts, exactly what the snapshot reads. `INNODB_TRX` may be up to 0.1 s old, so "now"
/// is taken one second early. `None` on MySQL (which stamps commit times
/// differently) and when the user may not read `INNODB_TRX` (the PROCESS privilege).
pub(crate) async fn change_threshold(conn: &mut MySqlConnection) -> Option<(String, i64)> {
    let row = conn
        .fetch_one(
            "SELECT @@version LIKE '%MariaDB%', \
               CONCAT('mariadb/', LEFT(SHA2(CONCAT_WS('|', @@server_id, @@hostname, @@port, \
                                                        @@datadir), 256), 16)), \
               LEAST(UNIX_TIMESTAMP() - 1, \
                     COALESCE((SELECT MIN(UNIX_TIMESTAMP(trx_started)) \
                               FROM information_schema.INNODB_TRX), UNIX_TIMESTAMP()))",
        )
        .await
        .ok()?;
    let mariadb = read::text(&row, 0).as_deref() == Some("1");
    let identity = read::text(&row, 1)?;
    let threshold = read::text(&row, 2)?.parse::<i64>().ok()?;
    mariadb.then_some((identity, threshold))
}

/// Each InnoDB table's change fingerprint, read once the snapshot has started:
///
/// - `table id.tablespace.stamp` for a table stamped before `threshold` (see
///   [`change_threshold`]): any commit after the snapshot stamps it at or after the
///   threshold, and a truncate or rebuild gives it a new table id.
/// - `table id.tablespace.unstamped.server start` for a table not stamped since it was loaded
///   into InnoDB's dictionary (no `UPDATE_TIME`: since the server started, or since a rebuild,
///   which also gives a new id). Its first change stamps it; the stamp is lost again only on
///   a restart (a new start time) or when InnoDB evicts the table from its dictionary, which
///   it does only while it holds more tables than `table_definition_cache`: so these are
///   given only while the server has fewer than half that many InnoDB tables. (The start
///   time is exact: `Uptime` counts from the statement's own start.)
///
/// A table stamped later, partitioned, or in another engine has none and is always read.
pub(crate) async fn table_fingerprints(
    conn: &mut MySqlConnection,
    threshold: i64,
) -> Option<std::collections::HashMap<String, String>> {
    let row = conn
        .fetch_one(
            "SELECT UNIX_TIMESTAMP() - g.VARIABLE_VALUE, g.VARIABLE_VALUE >= 2 \
                 AND (SELECT COUNT(*) FROM information_schema.INNODB_SYS_TABLES) \
                     < @@table_definition_cache / 2 \
             FROM information_schema.GLOBAL_STATUS g WHERE g.VARIABLE_NAME = 'UPTIME'",
        )
        .await
        .ok()?;
    let started = read::text(&row, 0)?;
    let unstamped_trusted = read::text(&row, 1).as_deref() == Some("1");
    let rows = conn
        .fetch_all(
            "SELECT t.TABLE_NAME, s.TABLE_ID, s.SPACE, UNIX_TIMESTAMP(t.UPDATE_TIME) \
             FROM information_schema.TABLES t \
             JOIN information_schema.INNODB_SYS_TABLES s \
               ON s.NAME = CONCAT(t.TABLE_SCHEMA, '/', t.TABLE_NAME) \
             WHERE t.TABLE_SCHEMA = DATABASE() AND t.ENGINE = 'InnoDB'",
        )
        .await
        .ok()?;
    let mut out = std::collections::HashMap::new();
    for row in rows {
        let (Some(name), Some(id), Some(space)) = (
            read::text(&row, 0),
            read::text(&row, 1),
            read::text(&row, 2),
        ) else {
            continue;
        };
        match read::text(&row, 3).map(|s| s.parse::<i64>()) {
            Some(Ok(stamp)) if stamp < threshold => {
                out.insert(name, format!("{id}.{space}.{stamp}"));
            }
            None if unstamped_trusted => {
                out.insert(name, format!("{id}.{space}.unstamped.{started}"));
            }
            _ => {}
        }
    }
    Some(out)
}
