//! MySQL and MariaDB: connect, introspect, read through the text protocol, write with
//! prepared multi-row INSERTs.

mod introspect;
mod objects;
mod read;
mod write;

pub(crate) use introspect::introspect;
pub(crate) use objects::schema_objects;
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
/// `table id.tablespace.stamp` for a table stamped before `threshold` (see
/// [`change_threshold`]). Any commit after the snapshot stamps the table at or after the
/// threshold, and a truncate or rebuild gives it a new table id.
///
/// A table without a stamp gets none and is read: InnoDB keeps stamps in memory only and
/// forgets them on a restart and when it evicts the table from its dictionary (more open
/// tables than `table_definition_cache`, `FLUSH TABLES`), so "no stamp" cannot tell "not
/// changed" from "changed, then forgotten". A table stamped later, partitioned, or in another
/// engine has none either.
///
/// Tables are matched to InnoDB's dictionary (`INNODB_SYS_TABLES.NAME`, `db/table` in the
/// server's filename encoding) by their exact encoded names, compared byte for byte here:
/// the server compares names without regard to case, so a join there gives `Foo` the id of
/// `foo`. A name outside ASCII gets no fingerprint (see [`innodb_name`]).
pub(crate) async fn table_fingerprints(
    conn: &mut MySqlConnection,
    threshold: i64,
) -> Option<std::collections::HashMap<String, String>> {
    let stamps = conn
        .fetch_all(
            "SELECT TABLE_SCHEMA, TABLE_NAME, UNIX_TIMESTAMP(UPDATE_TIME) \
             FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND ENGINE = 'InnoDB' AND TABLE_TYPE = 'BASE TABLE'",
        )
        .await
        .ok()?;
    let database = conn
        .fetch_one("SELECT DATABASE()")
        .await
        .ok()
        .and_then(|r| read::text(&r, 0))?;
    let Some(prefix) = innodb_name(&database).map(|d| format!("{d}/")) else {
        return Some(std::collections::HashMap::new());
    };
    // LIKE only narrows the rows (it ignores case, and `_` matches any character): the
    // names are compared exactly below.
    let like = crate::quote::literal(upkeep_core::Engine::Mysql, &format!("{prefix}%"));
    let ids: std::collections::HashMap<String, (String, String)> = conn
        .fetch_all(
            format!(
                "SELECT NAME, TABLE_ID, SPACE FROM information_schema.INNODB_SYS_TABLES \
                 WHERE NAME LIKE {like}"
            )
            .as_str(),
        )
        .await
        .ok()?
        .iter()
        .filter_map(|r| Some((read::text(r, 0)?, (read::text(r, 1)?, read::text(r, 2)?))))
        .collect();
    let mut out = std::collections::HashMap::new();
    for row in stamps {
        let (Some(schema), Some(name), Some(stamp)) = (
            read::text(&row, 0),
            read::text(&row, 1),
            read::text(&row, 2).and_then(|s| s.parse::<i64>().ok()),
        ) else {
            continue;
        };
        if schema != database || stamp >= threshold {
            continue;
        }
        let Some(encoded) = innodb_name(&name) else {
            continue;
        };
        if let Some((id, space)) = ids.get(&format!("{prefix}{encoded}")) {
            out.insert(name, format!("{id}.{space}.{stamp}"));
        }
    }
    Some(out)
}

/// A database or table name as InnoDB's dictionary spells it: the server's filename
/// encoding, which keeps ASCII letters, digits and `_` and writes every other ASCII
/// character as `@` and four lowercase hex digits (`a b` → `a@0020b`, `a@b` → `a@0040b`).
/// `None` outside ASCII, where the encoding uses tables of its own: such tables are read.
pub(crate) fn innodb_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if !c.is_ascii() {
            return None;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push_str(&format!("@{:04x}", u32::from(c)));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn innodb_names_use_the_filename_encoding() {
        assert_eq!(super::innodb_name("Foo_1").as_deref(), Some("Foo_1"));
        assert_eq!(super::innodb_name("a b").as_deref(), Some("a@0020b"));
        assert_eq!(
            super::innodb_name("a@0020b").as_deref(),
            Some("a@00400020b")
        );
        assert_eq!(super::innodb_name("my-app").as_deref(), Some("my@002dapp"));
        assert_eq!(super::innodb_name("caf\u{e9}"), None);
    }
}
