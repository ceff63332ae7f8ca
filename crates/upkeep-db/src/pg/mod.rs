//! PostgreSQL: connect, introspect, read with binary `COPY … TO STDOUT`, write with
//! `COPY … FROM STDIN`.

mod copy_binary;
mod copy_encode;
mod ddl;
mod introspect;
mod read;
mod write;

pub(crate) use ddl::native_ddl;
pub(crate) use introspect::introspect;
pub(crate) use read::read_chunk;
pub(crate) use write::{write_batch, write_stream};

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Executor, Row};

pub(crate) use crate::error::sqlx_err as err;
use crate::{DbError, Target};

/// PostgreSQL's binary dates and timestamps count from 2000-01-01.
pub(crate) fn epoch() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("2000-01-01 is a date")
}

/// Session settings under which `other` values are printed, as the digest spec requires.
const SESSION_SETTINGS: &str = "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; \
     SET TimeZone = 'UTC'; SET bytea_output = 'hex'; SET extra_float_digits = 1; \
     SET client_encoding = 'UTF8'";

pub(crate) async fn connect(target: &Target) -> Result<PgConnection, DbError> {
    let opts = PgConnectOptions::from_str(target.secret_url())
        .map_err(err(target, "connecting"))?
        .application_name("upkeep")
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
    conn: &mut PgConnection,
    target: &Target,
) -> Result<String, DbError> {
    let row = sqlx::query("SELECT version()")
        .fetch_one(&mut *conn)
        .await
        .map_err(err(target, "reading the server version"))?;
    Ok(row.try_get::<String, _>(0).unwrap_or_default())
}

/// Opens the coordinator's transaction and exports its snapshot for the workers.
pub(crate) async fn begin_exported(
    conn: &mut PgConnection,
    target: &Target,
) -> Result<String, DbError> {
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(err(target, "starting the snapshot transaction"))?;
    let row = sqlx::query("SELECT pg_export_snapshot()")
        .fetch_one(&mut *conn)
        .await
        .map_err(err(target, "exporting the snapshot"))?;
    row.try_get::<String, _>(0)
        .map_err(err(target, "exporting the snapshot"))
}

/// Joins a worker connection to an exported snapshot.
pub(crate) async fn join_snapshot(
    conn: &mut PgConnection,
    target: &Target,
    snapshot: &str,
) -> Result<(), DbError> {
    let sql = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
        crate::quote::literal(upkeep_core::Engine::Postgres, snapshot)
    );
    conn.execute(sql.as_str())
        .await
        .map_err(err(target, "joining the snapshot"))
        .map(|_| ())
}

pub(crate) async fn execute_script(
    conn: &mut PgConnection,
    target: &Target,
    sql: &str,
) -> Result<(), DbError> {
    conn.execute(sql)
        .await
        .map_err(err(target, "running SQL"))
        .map(|_| ())
}

pub(crate) async fn close(conn: PgConnection) {
    let _ = conn.close().await;
}
