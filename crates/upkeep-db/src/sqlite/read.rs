//! Reading SQLite rows by storage class (`content-digest.md`, the SQLite rules): a value that
//! fits its column's logical type is written by that type's rule, any other by the `other`
//! rule (its text as `CAST(value AS TEXT)` gives it, or its raw bytes for a BLOB).

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use upkeep_core::{canonical, Engine, LogicalType, Table};

use super::map_err;
use crate::quote;
use crate::scan::ChunkOut;
use crate::{DbError, Target};

pub(crate) fn read_chunk(
    conn: &Connection,
    target: &Target,
    table: &Table,
    tail: &str,
    out: &mut ChunkOut,
) -> Result<(), DbError> {
    let path = target.sqlite_path().expect("a SQLite target has a path");
    let context = format!("reading table {}", table.name);
    let cols: Vec<String> = table
        .columns
        .iter()
        .map(|c| quote::ident(Engine::Sqlite, &c.name))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}{}",
        if cols.is_empty() {
            "1".to_owned()
        } else {
            cols.join(", ")
        },
        quote::table(Engine::Sqlite, &table.name),
        tail
    );
    let logicals: Vec<LogicalType> = table.columns.iter().map(|c| c.logical).collect();
    let mut stmt = conn.prepare(&sql).map_err(|e| map_err(e, path, &context))?;
    let mut rows = stmt.query([]).map_err(|e| map_err(e, path, &context))?;
    while let Some(row) = rows.next().map_err(|e| map_err(e, path, &context))? {
        let b = out.builder();
        let mut irregular = 0;
        for (i, &logical) in logicals.iter().enumerate() {
            let value = row.get_ref(i).map_err(|e| map_err(e, path, &context))?;
            if matches!(value, ValueRef::Null) {
                b.push_null();
                continue;
            }
            let (mark, buf) = b.begin_value();
            if !write_fitting(logical, value, buf) {
                write_other(conn, value, buf).map_err(|e| map_err(e, path, &context))?;
                irregular += 1;
            }
            b.finish_value(mark);
        }
        out.row_done();
        out.note_irregular(irregular);
        out.flush_if_full_blocking()?;
    }
    Ok(())
}

/// Writes a value that fits its column's logical type; false (nothing written) otherwise.
fn write_fitting(logical: LogicalType, value: ValueRef<'_>, out: &mut Vec<u8>) -> bool {
    use LogicalType as L;
    match (logical, value) {
        (_, ValueRef::Null) => false,
        (L::Bool, ValueRef::Integer(i)) => {
            canonical::write_bool(i != 0, out);
            true
        }
        (L::Int | L::Decimal | L::Float64 | L::Float32, ValueRef::Integer(i)) => {
            canonical::write_i64(i, out);
            true
        }
        (L::Int, ValueRef::Real(f)) if f.is_finite() && f.fract() == 0.0 => {
            // An integral REAL in an int column is that integer (it may exceed 64 bits).
            canonical::write_f64(f, out);
            true
        }
        (L::Decimal | L::Float64 | L::Float32 | L::Json, ValueRef::Real(f)) => {
            if logical == L::Json && !f.is_finite() {
                return false;
            }
            canonical::write_f64(f, out);
            true
        }
        (L::Json, ValueRef::Integer(i)) => {
            canonical::write_i64(i, out);
            true
        }
        (L::Text | L::FixedText | L::Other, ValueRef::Text(t)) => {
            out.extend_from_slice(t);
            true
        }
        (L::Bytes | L::Other, ValueRef::Blob(b)) => {
            out.extend_from_slice(b);
            true
        }
        // SQLite has no zone type: a timestamptz column (from a mapping) is read as timestamp
        // text with its offset applied, then marked as UTC.
        (
            L::Decimal | L::Date | L::Time | L::Timestamp | L::TimestampTz | L::Uuid | L::Json,
            ValueRef::Text(t),
        ) => canonical::write_from_text(logical, t, out).is_ok(),
        _ => false,
    }
}

/// The spec's `other` rule for SQLite: `CAST(value AS TEXT)`, or the raw bytes of a BLOB.
fn write_other(conn: &Connection, value: ValueRef<'_>, out: &mut Vec<u8>) -> rusqlite::Result<()> {
    match value {
        ValueRef::Null => {}
        ValueRef::Integer(i) => canonical::write_i64(i, out),
        // SQLite's own REAL-to-text conversion has its own digits: ask SQLite.
        ValueRef::Real(f) => {
            let text: String = conn
                .prepare_cached("SELECT CAST(?1 AS TEXT)")?
                .query_row([f], |r| r.get(0))?;
            out.extend_from_slice(text.as_bytes());
        }
        ValueRef::Text(t) | ValueRef::Blob(t) => out.extend_from_slice(t),
    }
    Ok(())
}
