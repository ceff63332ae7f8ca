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

/// Session settings under which `other` values are printed, as the digest spec requires; and
/// JIT off (PostgreSQL 11+): compiling each range's scan costs more than it saves (a range read
/// with its rows' xmin took 11 % longer with JIT than without).
const SESSION_SETTINGS: &str = "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; \
     SET TimeZone = 'UTC'; SET bytea_output = 'hex'; SET extra_float_digits = 1; \
     SET client_encoding = 'UTF8'; \
     SELECT set_config('jit', 'off', false) WHERE current_setting('jit', true) IS NOT NULL";

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

/// What must be the same for two snapshots' change fingerprints to be compared: the cluster
/// (its system identifier), its timeline (a point-in-time recovery starts a new one and hands
/// out transaction ids again), the database, and the transaction-id epoch in units of 2^30
/// (ids wrap around after 2^32; within one unit no id is handed out twice). `None` when the
/// role may not read the control data.
pub(crate) async fn change_identity(
    conn: &mut PgConnection,
    target: &Target,
) -> Result<Option<String>, DbError> {
    // The CASE keeps a refused function call, which would abort the snapshot's transaction,
    // from running.
    let row = sqlx::query(
        "SELECT CASE WHEN has_function_privilege('pg_control_system()', 'EXECUTE') \
           AND has_function_privilege('pg_control_checkpoint()', 'EXECUTE') THEN \
           (SELECT format('pg/%s/%s/%s/%s', s.system_identifier, c.timeline_id, d.oid, \
                          txid_snapshot_xmax(txid_current_snapshot()) >> 30) \
            FROM pg_control_system() s, pg_control_checkpoint() c, pg_database d \
            WHERE d.datname = current_database()) END",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(err(target, "reading the cluster's identity"))?;
    row.try_get::<Option<String>, _>(0)
        .map_err(err(target, "reading the cluster's identity"))
}

/// The change fingerprint of the rows of `table` after `tail` (a `WHERE`), computed by the
/// server: `rows/sum of hashint8extended(xmin, 0)/sum of the rows' ctids (block × 65536 +
/// offset)`. Every insert or update writes a row version with a new `xmin` at a new `ctid`,
/// and a delete lowers the count, so a changed range changes its fingerprint. The ctids
/// guard the one case xmin alone misses: a frozen row keeps its 32-bit xmin, which a
/// transaction 2^32 ids later has again; that transaction's new version of the row still
/// sits at another ctid. [`XminSum`] computes the same from rows read with `xmin, ctid`.
pub(crate) async fn range_fingerprint(
    conn: &mut PgConnection,
    target: &Target,
    table: &upkeep_core::Table,
    tail: &str,
) -> Result<String, DbError> {
    let sql = format!(
        "SELECT count(*)::text || '/' || coalesce(sum(hashint8extended(x, 0)), 0)::text \
                || '/' || coalesce(sum((p[0] * 65536 + p[1])::int8), 0)::text \
         FROM (SELECT xmin::text::int8 AS x, ctid::text::point AS p FROM {}{tail}) AS r",
        crate::plan::from_clause(upkeep_core::Engine::Postgres, table)
    );
    let context = format!("fingerprinting table {}", table.name);
    let row = sqlx::query(&sql)
        .fetch_one(&mut *conn)
        .await
        .map_err(err(target, &context))?;
    row.try_get::<String, _>(0).map_err(err(target, &context))
}

/// The client's side of [`range_fingerprint`], summed over rows as they are read.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct XminSum {
    rows: u64,
    sum: i128,
    tids: i128,
}

impl XminSum {
    pub(crate) fn add(&mut self, xmin: u32, block: u32, offset: u16) {
        self.rows += 1;
        self.sum += i128::from(hash_xid(xmin));
        self.tids += i128::from(block) * 65_536 + i128::from(offset);
    }

    pub(crate) fn fingerprint(&self) -> String {
        format!("{}/{}/{}", self.rows, self.sum, self.tids)
    }
}

/// PostgreSQL's `hashint8extended(xid::int8, 0)`: Bob Jenkins' lookup3 final mix of one 32-bit
/// word, as `hash_bytes_uint32_extended` computes it (the hash partitioning relies on, so it
/// does not change between releases). Were it ever to differ, fingerprints would never match
/// and every range would be read: slower, never wrong.
pub(crate) fn hash_xid(k: u32) -> i64 {
    let init = 0x9e37_79b9_u32.wrapping_add(4).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init.wrapping_add(k), init, init);
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    ((u64::from(b) << 32) | u64::from(c)).cast_signed()
}

#[cfg(test)]
mod tests {
    #[test]
    fn xid_hash_is_postgres_hashint8extended() {
        // SELECT x, hashint8extended(x, 0) on PostgreSQL 15.
        for (x, h) in [
            (0, 4_154_612_158_245_552_303),
            (1, -3_670_598_878_359_251_130),
            (747, -2_527_377_027_897_327_742),
            (123_456_789, 6_027_323_723_798_353_252),
            (u32::MAX, -1_888_257_769_727_981_238),
        ] {
            assert_eq!(super::hash_xid(x), h, "{x}");
        }
    }
}
