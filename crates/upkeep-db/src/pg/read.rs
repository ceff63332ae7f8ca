//! Reading a PostgreSQL table chunk with `COPY (SELECT …) TO STDOUT (FORMAT binary)` and
//! encoding each value canonically straight from its binary form.

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike};
use futures_util::StreamExt;
use sqlx::postgres::PgConnection;
use upkeep_core::{canonical, BatchBuilder, Engine, LogicalType, Table};

use super::copy_binary::{CopyFormatError, CopyParser};
use super::err;
use crate::quote;
use crate::scan::ChunkOut;
use crate::{DbError, Target};

/// How one column's binary value becomes canonical text.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PgDecode {
    Bool,
    Int,
    Numeric,
    Float32,
    Float64,
    Text,
    FixedText,
    Bytes,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    /// The server sent text (a `::text` cast or the output function): read it as this type.
    TextAs(LogicalType),
}

/// The select list that reads `table` for the digest, and how to decode each column.
pub(crate) fn select_list(table: &Table) -> (Vec<String>, Vec<PgDecode>) {
    let mut exprs = Vec::with_capacity(table.columns.len());
    let mut decs = Vec::with_capacity(table.columns.len());
    for c in &table.columns {
        let col = quote::ident(Engine::Postgres, &c.name);
        let native = c.native_type.as_str();
        let plain = |ok: bool, cast: &str| {
            if ok {
                col.clone()
            } else {
                format!("{col}::{cast}")
            }
        };
        let (expr, dec) = match c.logical {
            LogicalType::Bool => (plain(native == "boolean", "boolean"), PgDecode::Bool),
            LogicalType::Int => (
                plain(
                    matches!(native, "smallint" | "integer" | "bigint"),
                    "bigint",
                ),
                PgDecode::Int,
            ),
            LogicalType::Decimal => (
                plain(native.starts_with("numeric"), "numeric"),
                PgDecode::Numeric,
            ),
            LogicalType::Float32 => (plain(native == "real", "real"), PgDecode::Float32),
            LogicalType::Float64 => (
                plain(native == "double precision", "double precision"),
                PgDecode::Float64,
            ),
            LogicalType::Text => {
                let ok =
                    native == "text" || native.starts_with("character varying") || native == "name";
                (plain(ok, "text"), PgDecode::Text)
            }
            LogicalType::FixedText => {
                let ok =
                    native.starts_with("character(") || native == "character" || native == "bpchar";
                (plain(ok, "text"), PgDecode::FixedText)
            }
            LogicalType::Bytes => (plain(native == "bytea", "bytea"), PgDecode::Bytes),
            LogicalType::Date => (plain(native == "date", "date"), PgDecode::Date),
            LogicalType::Time => {
                let ok = native.starts_with("time") && native.ends_with("without time zone");
                (plain(ok, "time"), PgDecode::Time)
            }
            LogicalType::Timestamp => {
                let ok = native.starts_with("timestamp") && native.ends_with("without time zone");
                (plain(ok, "timestamp"), PgDecode::Timestamp)
            }
            LogicalType::TimestampTz => {
                let ok = native.starts_with("timestamp") && native.ends_with("with time zone");
                (plain(ok, "timestamptz"), PgDecode::TimestampTz)
            }
            LogicalType::Uuid => (plain(native == "uuid", "uuid"), PgDecode::Uuid),
            LogicalType::Json => (format!("{col}::text"), PgDecode::TextAs(LogicalType::Json)),
            // format('%s', v) prints v with its type's output function, as COPY's text format
            // does; a plain ::text cast does not always (inet).
            LogicalType::Other => (
                format!("CASE WHEN {col} IS NULL THEN NULL ELSE format('%s', {col}) END"),
                PgDecode::TextAs(LogicalType::Other),
            ),
        };
        exprs.push(expr);
        decs.push(dec);
    }
    (exprs, decs)
}

pub(crate) async fn read_chunk(
    conn: &mut PgConnection,
    target: &Target,
    table: &Table,
    tail: &str,
    out: &mut ChunkOut,
) -> Result<(), DbError> {
    let (mut exprs, decs) = select_list(table);
    // Each row's xmin and ctid, last, for the range's change fingerprint.
    let with_xmin = out.versions.is_some();
    if with_xmin {
        exprs.push("xmin".to_owned());
        exprs.push("ctid".to_owned());
    }
    let from = crate::plan::from_clause(Engine::Postgres, table);
    // A table without columns still has rows; they are read as empty rows.
    let sql = format!(
        "COPY (SELECT {} FROM {from}{}) TO STDOUT (FORMAT binary)",
        exprs.join(", "),
        tail
    );
    let context = format!("reading table {}", table.name);
    let mut stream = conn
        .copy_out_raw(&sql)
        .await
        .map_err(err(target, &context))?;
    let mut parser = CopyParser::default();
    let bad = |e: CopyFormatError| DbError::query(target.display(), context.clone(), e.to_string());
    let fields_per_row = decs.len() + 2 * usize::from(with_xmin);
    while let Some(message) = stream.next().await {
        let bytes = message.map_err(err(target, &context))?;
        parser
            .parse::<ReadError>(&bytes, fields_per_row, |fields| {
                let (values, xmin) = fields.split_at(decs.len());
                let b = out.builder();
                for (i, (field, dec)) in values.iter().zip(&decs).enumerate() {
                    match field {
                        None => b.push_null(),
                        Some(raw) => decode(*dec, raw, b).map_err(|m| {
                            DbError::query(
                                target.display(),
                                context.clone(),
                                format!("column {:?}: {m}", table.columns[i].name),
                            )
                        })?,
                    }
                }
                if let (Some(sum), [Some(xid), Some(tid)]) = (out.versions.as_mut(), xmin) {
                    let bad = |m: String| DbError::query(target.display(), context.clone(), m);
                    let xid = u32::from_be_bytes(be::<4>(xid).map_err(bad)?);
                    let tid = be::<6>(tid).map_err(bad)?;
                    let block = u32::from_be_bytes([tid[0], tid[1], tid[2], tid[3]]);
                    sum.add(xid, block, u16::from_be_bytes([tid[4], tid[5]]));
                }
                out.row_done();
                Ok(())
            })
            .map_err(|e| match e {
                ReadError::Db(e) => e,
                ReadError::Copy(e) => bad(e),
            })?;
        out.flush_if_full().await?;
    }
    parser.finish().map_err(bad)?;
    Ok(())
}

enum ReadError {
    Db(DbError),
    Copy(CopyFormatError),
}

impl From<DbError> for ReadError {
    fn from(e: DbError) -> Self {
        Self::Db(e)
    }
}

impl From<CopyFormatError> for ReadError {
    fn from(e: CopyFormatError) -> Self {
        Self::Copy(e)
    }
}

fn be<const N: usize>(raw: &[u8]) -> Result<[u8; N], String> {
    raw.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", raw.len()))
}

fn decode(dec: PgDecode, raw: &[u8], b: &mut BatchBuilder) -> Result<(), String> {
    let (mark, out) = b.begin_value();
    let result = decode_into(dec, raw, out);
    match result {
        Ok(()) => {
            b.finish_value(mark);
            Ok(())
        }
        Err(e) => {
            b.abandon_value(mark);
            Err(e)
        }
    }
}

fn decode_into(dec: PgDecode, raw: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    match dec {
        PgDecode::Bool => canonical::write_bool(raw.first().is_some_and(|&v| v != 0), out),
        PgDecode::Int => match raw.len() {
            2 => canonical::write_i64(i64::from(i16::from_be_bytes(be(raw)?)), out),
            4 => canonical::write_i64(i64::from(i32::from_be_bytes(be(raw)?)), out),
            8 => canonical::write_i64(i64::from_be_bytes(be(raw)?), out),
            n => return Err(format!("integer of {n} bytes")),
        },
        PgDecode::Numeric => write_numeric(raw, out)?,
        PgDecode::Float32 => canonical::write_f32(f32::from_be_bytes(be(raw)?), out),
        PgDecode::Float64 => canonical::write_f64(f64::from_be_bytes(be(raw)?), out),
        PgDecode::Text | PgDecode::Bytes => out.extend_from_slice(raw),
        PgDecode::FixedText => out.extend_from_slice(canonical::trim_fixed(raw)),
        PgDecode::Date => {
            let days = i32::from_be_bytes(be(raw)?);
            match days {
                i32::MAX => out.extend_from_slice(b"infinity"),
                i32::MIN => out.extend_from_slice(b"-infinity"),
                _ => {
                    let date = super::epoch()
                        .checked_add_signed(TimeDelta::days(i64::from(days)))
                        .ok_or_else(|| {
                            format!("date {days} days from 2000-01-01 is out of range")
                        })?;
                    if (1..=9999).contains(&date.year()) {
                        canonical::write_date(date.year(), date.month(), date.day(), out);
                    } else {
                        out.extend_from_slice(pg_date_text(&date).as_bytes());
                    }
                }
            }
        }
        PgDecode::Time => {
            let us = i64::from_be_bytes(be(raw)?);
            let us = u64::try_from(us).map_err(|_| "negative time".to_owned())?;
            let secs = us / 1_000_000;
            let h = u32::try_from(secs / 3600).map_err(|_| "time out of range".to_owned())?;
            #[allow(clippy::cast_possible_truncation)]
            canonical::write_time(
                h,
                ((secs / 60) % 60) as u32,
                (secs % 60) as u32,
                (us % 1_000_000) as u32,
                out,
            );
        }
        PgDecode::Timestamp | PgDecode::TimestampTz => {
            let us = i64::from_be_bytes(be(raw)?);
            match us {
                i64::MAX => out.extend_from_slice(b"infinity"),
                i64::MIN => out.extend_from_slice(b"-infinity"),
                _ => {
                    let ts = NaiveDateTime::from(super::epoch())
                        .checked_add_signed(TimeDelta::microseconds(us))
                        .ok_or_else(|| "timestamp out of range".to_owned())?;
                    let tz = matches!(dec, PgDecode::TimestampTz);
                    if canonical::write_naive_datetime(&ts, out).is_some() {
                        if tz {
                            out.push(b'Z');
                        }
                    } else {
                        out.extend_from_slice(pg_timestamp_text(&ts, tz).as_bytes());
                    }
                }
            }
        }
        PgDecode::Uuid => canonical::write_uuid(&be::<16>(raw)?, out),
        PgDecode::TextAs(logical) => {
            canonical::write_from_text(logical, raw, out).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Numeric's binary form: digit count, weight, sign, display scale, then base-10000 digits.
pub(crate) fn write_numeric(raw: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if raw.len() < 8 {
        return Err("short numeric".into());
    }
    let ndigits = usize::from(u16::from_be_bytes([raw[0], raw[1]]));
    let weight = i64::from(i16::from_be_bytes([raw[2], raw[3]]));
    let sign = u16::from_be_bytes([raw[4], raw[5]]);
    match sign {
        0xC000 => {
            out.extend_from_slice(b"NaN");
            return Ok(());
        }
        0xD000 => {
            out.extend_from_slice(b"Infinity");
            return Ok(());
        }
        0xF000 => {
            out.extend_from_slice(b"-Infinity");
            return Ok(());
        }
        0x0000 | 0x4000 => {}
        other => return Err(format!("numeric sign {other:#x}")),
    }
    if raw.len() < 8 + 2 * ndigits {
        return Err("short numeric".into());
    }
    // Typical numerics have a few base-10000 digits: keep them on the stack.
    let mut stack = [0u8; 64];
    let mut heap = Vec::new();
    let digits: &mut [u8] = if ndigits * 4 <= stack.len() {
        &mut stack[..ndigits * 4]
    } else {
        heap.resize(ndigits * 4, 0);
        &mut heap
    };
    for i in 0..ndigits {
        let d = u16::from_be_bytes([raw[8 + 2 * i], raw[9 + 2 * i]]);
        if d > 9999 {
            return Err(format!("numeric digit {d}"));
        }
        let group = &mut digits[4 * i..4 * i + 4];
        group[0] = b'0' + u8::try_from(d / 1000).unwrap_or(0);
        group[1] = b'0' + u8::try_from(d / 100 % 10).unwrap_or(0);
        group[2] = b'0' + u8::try_from(d / 10 % 10).unwrap_or(0);
        group[3] = b'0' + u8::try_from(d % 10).unwrap_or(0);
    }
    let n = i64::try_from(ndigits).unwrap_or(0);
    let exp = 4 * (weight - n + 1);
    canonical::write_decimal_parts(sign == 0x4000, digits, &[], exp, out);
    Ok(())
}

/// PostgreSQL's ISO output of a date outside years 1–9999 (the spec's `other` rule).
fn pg_date_text(d: &NaiveDate) -> String {
    let (year, bc) = if d.year() <= 0 {
        (1 - d.year(), " BC")
    } else {
        (d.year(), "")
    };
    format!("{year:04}-{:02}-{:02}{bc}", d.month(), d.day())
}

fn pg_timestamp_text(ts: &NaiveDateTime, tz: bool) -> String {
    let (year, bc) = if ts.year() <= 0 {
        (1 - ts.year(), " BC")
    } else {
        (ts.year(), "")
    };
    let mut s = format!(
        "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        ts.month(),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second()
    );
    let micros = ts.nanosecond() / 1000;
    if micros != 0 {
        s.push_str(format!(".{micros:06}").trim_end_matches('0'));
    }
    if tz {
        s.push_str("+00");
    }
    s.push_str(bc);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> String {
        let mut raw = Vec::new();
        for v in [ndigits, weight.cast_unsigned(), sign, dscale] {
            raw.extend_from_slice(&v.to_be_bytes());
        }
        for d in digits {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        let mut out = Vec::new();
        write_numeric(&raw, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numeric_binary_becomes_canonical_decimal() {
        // 12345678901234567890.1234567890
        assert_eq!(
            numeric(
                8,
                4,
                0,
                10,
                &[1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000]
            ),
            "12345678901234567890.123456789"
        );
        assert_eq!(numeric(1, -1, 0x4000, 4, &[1]), "-0.0001");
        assert_eq!(numeric(0, 0, 0, 2, &[]), "0");
        assert_eq!(numeric(1, 1, 0, 0, &[1]), "10000");
        assert_eq!(numeric(0, 0, 0xC000, 0, &[]), "NaN");
    }

    #[test]
    fn out_of_range_dates_print_as_postgres_does() {
        let d = NaiveDate::from_ymd_opt(-4712, 11, 24).unwrap();
        assert_eq!(pg_date_text(&d), "4713-11-24 BC");
        let ts = NaiveDate::from_ymd_opt(10000, 1, 1)
            .unwrap()
            .and_hms_micro_opt(1, 2, 3, 500_000)
            .unwrap();
        assert_eq!(pg_timestamp_text(&ts, true), "10000-01-01 01:02:03.5+00");
    }
}
