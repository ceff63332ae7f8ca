//! PostgreSQL: connect, introspect, read with binary `COPY … TO STDOUT`, write with
//! `COPY … FROM STDIN`.

mod copy_binary;
mod copy_encode;
mod introspect;
mod objects;
mod read;
mod write;

pub(crate) use introspect::introspect;
pub(crate) use objects::schema_objects;
pub(crate) use read::read_chunk;
pub(crate) use write::{write_batch, write_stream, write_stream_frozen};

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

/// See [`crate::Database::begin_bulk_load`]. Settings a server lacks (before PostgreSQL 11)
/// are left out.
pub(crate) async fn begin_bulk_load(
    conn: &mut PgConnection,
    target: &Target,
    load: crate::BulkLoad,
) -> Result<(), DbError> {
    let mut sql = "SELECT count(set_config(name, CASE name WHEN 'jit' THEN 'off' ELSE '0' END, false)) \
         FROM pg_settings \
         WHERE name IN ('max_parallel_maintenance_workers', 'max_parallel_workers_per_gather', 'jit')"
        .to_owned();
    if let Some(mib) = load.maintenance_work_mem_mb {
        sql.push_str(&format!(
            " UNION ALL SELECT count(set_config('maintenance_work_mem', '{mib}MB', false)) \
             WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < {mib}::bigint * 1048576"
        ));
    }
    conn.execute(sql.as_str())
        .await
        .map_err(err(target, "setting up a loading session"))?;
    // Function bodies are checked when they run, not when they are created: a body may read
    // a table created after it (pg_dump's restores do the same).
    conn.execute("SET check_function_bodies = false")
        .await
        .map_err(err(target, "setting up a loading session"))?;
    if load.disable_triggers {
        conn.execute("SET session_replication_role = replica")
            .await
            .map_err(err(
                target,
                "turning triggers and foreign key checks off for a load into existing tables \
                 (session_replication_role needs a superuser)",
            ))?;
    }
    Ok(())
}

pub(crate) async fn close(conn: PgConnection) {
    let _ = conn.close().await;
}

/// What must be the same for two snapshots' change fingerprints to be compared, and the WAL
/// position of this one (which must not be behind the other's).
///
/// The identity names the cluster (its system identifier), its timeline (a point-in-time
/// recovery starts a new one), the database, the transaction-id epoch in units of 2^30 (ids
/// wrap around after 2^32; within one unit no id is handed out twice), and the server's
/// incarnation: when the postmaster started and when the shared statistics were last reset
/// (`pg_stat_bgwriter.stats_reset`). A cluster set back (a base backup or a copy of the data
/// directory put back, commits lost in a crash with `synchronous_commit = off`) hands out
/// the same transaction ids again, and the same change on the same page then writes the
/// same `(ctid, xmin)`: each of these needs a start (a new start time) or a crash recovery,
/// which a backend's crash runs without restarting the postmaster but which discards the
/// statistics (a new reset time). So fingerprints are compared only between snapshots of one
/// uninterrupted run of the server.
///
/// `None` when the role may not read the control data, or before PostgreSQL 13 (no
/// `hashtidextended`).
pub(crate) async fn change_identity(
    conn: &mut PgConnection,
    target: &Target,
) -> Result<Option<(String, u64)>, DbError> {
    let context = "reading the cluster's identity";
    // The CASE keeps a refused function call, which would abort the snapshot's transaction,
    // from running.
    let row = sqlx::query(
        "SELECT CASE WHEN to_regprocedure('hashtidextended(tid, bigint)') IS NOT NULL \
           AND has_function_privilege('pg_control_system()', 'EXECUTE') \
           AND has_function_privilege('pg_control_checkpoint()', 'EXECUTE') THEN \
           (SELECT format('pg/%s/%s/%s/%s/%s/%s', s.system_identifier, c.timeline_id, d.oid, \
                          txid_snapshot_xmax(txid_current_snapshot()) >> 30, \
                          (extract(epoch FROM pg_postmaster_start_time()) * 1e6)::int8, \
                          coalesce((extract(epoch FROM b.stats_reset) * 1e6)::int8::text, '-')) \
            FROM pg_control_system() s, pg_control_checkpoint() c, pg_database d, \
                 pg_stat_bgwriter b \
            WHERE d.datname = current_database()) END",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(err(target, context))?;
    let Some(identity) = row
        .try_get::<Option<String>, _>(0)
        .map_err(err(target, context))?
    else {
        return Ok(None);
    };
    // A separate query: before PostgreSQL 10 these functions had other names, and a query
    // naming them would not parse (the CASE above has already returned None there).
    let row = sqlx::query(
        "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                 ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn)::text",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(err(target, context))?;
    let position = row
        .try_get::<Option<String>, _>(0)
        .map_err(err(target, context))?
        .and_then(|p| p.parse::<u64>().ok());
    Ok(position.map(|p| (identity, p)))
}

/// The change fingerprint of the rows of `table` after `tail` (a `WHERE`), computed by the
/// server: `rows/sum of hashtidextended(ctid, xmin)`. Every insert or update writes a row
/// version with a new `xmin` at a new `ctid`, and a delete lowers the count, so a changed
/// range changes its fingerprint. Hashing the pair, not `xmin` alone, covers a frozen row,
/// which keeps its 32-bit `xmin` that a transaction 2^32 ids later has again: its new version
/// still sits at another `ctid`. [`RowVersionSum`] computes the same from rows read with
/// `xmin, ctid`.
pub(crate) async fn range_fingerprint(
    conn: &mut PgConnection,
    target: &Target,
    table: &upkeep_core::Table,
    tail: &str,
) -> Result<String, DbError> {
    let sql = format!(
        "SELECT count(*)::text || '/' \
                || coalesce(sum(hashtidextended(ctid, xmin::text::int8)), 0)::text \
         FROM {}{tail}",
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
pub(crate) struct RowVersionSum {
    rows: u64,
    sum: i128,
}

impl RowVersionSum {
    pub(crate) fn add(&mut self, xmin: u32, block: u32, offset: u16) {
        self.rows += 1;
        self.sum += i128::from(hash_row_version(xmin, block, offset));
    }

    pub(crate) fn fingerprint(&self) -> String {
        format!("{}/{}", self.rows, self.sum)
    }
}

/// PostgreSQL's `hashtidextended(ctid, xmin::int8)`: `hash_bytes_extended` (Bob Jenkins'
/// lookup3) of the 6 bytes of an `ItemPointerData` as a little-endian server lays them out,
/// seeded with the xid. The hash partitioning relies on these functions, so they do not
/// change between releases; were they ever to differ (or on a big-endian server),
/// fingerprints would never match and every range would be read: slower, never wrong.
pub(crate) fn hash_row_version(xmin: u32, block: u32, offset: u16) -> i64 {
    // lookup3's steps: `x -= y; x ^= rot(y, k)` in mix, `x ^= y; x -= rot(y, k)` in final.
    fn sub_xor(x: &mut u32, y: u32, k: u32) {
        *x = x.wrapping_sub(y) ^ y.rotate_left(k);
    }
    fn xor_sub(x: &mut u32, y: u32, k: u32) {
        *x = (*x ^ y).wrapping_sub(y.rotate_left(k));
    }
    let init = 0x9e37_79b9_u32.wrapping_add(6).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init, init, init);
    if xmin != 0 {
        // The seed's high word is 0 for an xid; its low word is the xid. Then mix(a, b, c).
        b = b.wrapping_add(xmin);
        for (ka, kb, kc) in [(4, 6, 8), (16, 19, 4)] {
            sub_xor(&mut a, c, ka);
            c = c.wrapping_add(b);
            sub_xor(&mut b, a, kb);
            a = a.wrapping_add(c);
            sub_xor(&mut c, b, kc);
            b = b.wrapping_add(a);
        }
    }
    // BlockIdData is { bi_hi, bi_lo }, then the offset: three little-endian u16.
    a = a.wrapping_add((block >> 16) | ((block & 0xffff) << 16));
    b = b.wrapping_add(u32::from(offset));
    // final(a, b, c).
    xor_sub(&mut c, b, 14);
    xor_sub(&mut a, c, 11);
    xor_sub(&mut b, a, 25);
    xor_sub(&mut c, b, 16);
    xor_sub(&mut a, c, 4);
    xor_sub(&mut b, a, 14);
    xor_sub(&mut c, b, 24);
    ((u64::from(b) << 32) | u64::from(c)).cast_signed()
}

#[cfg(test)]
mod tests {
    #[test]
    fn row_version_hash_is_postgres_hashtidextended() {
        // SELECT hashtidextended('(block,offset)'::tid, xmin) on PostgreSQL 15.
        for ((xmin, block, offset), h) in [
            ((3021, 0, 1), 4_308_521_609_791_712_081),
            ((3021, 1, 7), -5_820_012_397_253_658_078),
            ((3161, 12_345, 40), -7_808_229_607_380_129_061),
            ((0, 131_073, 5), 783_883_101_239_227_836),
            ((u32::MAX, 3, 9), 9_114_457_296_890_062_231),
        ] {
            assert_eq!(
                super::hash_row_version(xmin, block, offset),
                h,
                "{xmin} ({block},{offset})"
            );
        }
    }
}
