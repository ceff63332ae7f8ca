//! Canonical values in PostgreSQL's binary COPY format: the inverse of `read.rs`'s decoding.
//!
//! The server then skips each type's text parser (numeric, timestamps and integers parse
//! about a third faster in binary). A table is written in binary only when every written
//! column has a type listed here; any other table goes through COPY's text format.

use chrono::NaiveDate;
use upkeep_core::{canonical, ByteCursor, LogicalType, Table};

/// The binary COPY header: signature, flags, header extension length.
pub(crate) const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The trailer: a field count of -1.
pub(crate) const TRAILER: &[u8; 2] = b"\xff\xff";

/// How one column's canonical text becomes the binary form of its PostgreSQL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PgEncode {
    Bool,
    Int2,
    Int4,
    Int8,
    Numeric,
    Float4,
    Float8,
    /// text, varchar, char(n), json, bytea: the bytes as they are.
    Raw,
    Jsonb,
    Date,
    Time,
    Timestamp,
    Uuid,
}

/// The binary encoding of each written column (generated columns are left out), or `None`
/// when a column's type has no binary encoding here.
pub(crate) fn binary_plan(table: &Table) -> Option<Vec<PgEncode>> {
    let mut plan = Vec::with_capacity(table.columns.len());
    for c in table.written_columns() {
        let native = c.native_type.as_str();
        let enc = match (c.logical, native) {
            (LogicalType::Bool, "boolean") => PgEncode::Bool,
            (LogicalType::Int, "smallint") => PgEncode::Int2,
            (LogicalType::Int, "integer") => PgEncode::Int4,
            (LogicalType::Int, "bigint") => PgEncode::Int8,
            (LogicalType::Decimal, n) if n == "numeric" || n.starts_with("numeric(") => {
                PgEncode::Numeric
            }
            (LogicalType::Float32, "real") => PgEncode::Float4,
            (LogicalType::Float64, "double precision") => PgEncode::Float8,
            (LogicalType::Text, n) if n == "text" || n.starts_with("character varying") => {
                PgEncode::Raw
            }
            (LogicalType::FixedText, n) if n == "character" || n.starts_with("character(") => {
                PgEncode::Raw
            }
            (LogicalType::Bytes, "bytea") => PgEncode::Raw,
            (LogicalType::Date, "date") => PgEncode::Date,
            (LogicalType::Time, n) if n.starts_with("time") && n.ends_with("without time zone") => {
                PgEncode::Time
            }
            (LogicalType::Timestamp, n)
                if n.starts_with("timestamp") && n.ends_with("without time zone") =>
            {
                PgEncode::Timestamp
            }
            (LogicalType::TimestampTz, n)
                if n.starts_with("timestamp") && n.ends_with("with time zone") =>
            {
                PgEncode::Timestamp
            }
            (LogicalType::Uuid, "uuid") => PgEncode::Uuid,
            (LogicalType::Json, "json") => PgEncode::Raw,
            (LogicalType::Json, "jsonb") => PgEncode::Jsonb,
            _ => return None,
        };
        plan.push(enc);
    }
    Some(plan)
}

/// Appends one field: its length and binary value, or -1 for NULL. On error `out` is left as
/// it was.
pub(crate) fn write_field(
    enc: PgEncode,
    value: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let Some(v) = value else {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    };
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if let Err(e) = encode(enc, v, out) {
        out.truncate(start);
        return Err(e);
    }
    let len = i32::try_from(out.len() - start - 4).map_err(|_| "value over 2 GB".to_owned())?;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// A canonical integer: an optional `-` and decimal digits, within `T`'s range.
fn parse_int<T: TryFrom<i64>>(v: &[u8]) -> Option<T> {
    let (neg, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        // Computed negative, so that i64::MIN fits.
        n = n.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    let n = if neg { n } else { n.checked_neg()? };
    T::try_from(n).ok()
}

fn invalid(what: &str, v: &[u8]) -> String {
    format!(
        "{:?} is not a valid {what}",
        String::from_utf8_lossy(&v[..v.len().min(64)])
    )
}

fn encode(enc: PgEncode, v: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    match enc {
        PgEncode::Bool => match v {
            b"true" => out.push(1),
            b"false" => out.push(0),
            _ => return Err(invalid("boolean", v)),
        },
        PgEncode::Int2 => {
            let n: i16 = parse_int(v).ok_or_else(|| invalid("smallint", v))?;
            out.extend_from_slice(&n.to_be_bytes());
        }
        PgEncode::Int4 => {
            let n: i32 = parse_int(v).ok_or_else(|| invalid("integer", v))?;
            out.extend_from_slice(&n.to_be_bytes());
        }
        PgEncode::Int8 => {
            let n: i64 = parse_int(v).ok_or_else(|| invalid("bigint", v))?;
            out.extend_from_slice(&n.to_be_bytes());
        }
        PgEncode::Numeric => write_numeric(v, out).ok_or_else(|| invalid("numeric", v))?,
        PgEncode::Float4 => {
            let f = canonical::parse_float(v).map_err(|_| invalid("real", v))?;
            #[allow(clippy::cast_possible_truncation)] // the canonical text is a 4-byte float's
            out.extend_from_slice(&(f as f32).to_be_bytes());
        }
        PgEncode::Float8 => {
            let f = canonical::parse_float(v).map_err(|_| invalid("double precision", v))?;
            out.extend_from_slice(&f.to_be_bytes());
        }
        PgEncode::Raw => out.extend_from_slice(v),
        PgEncode::Jsonb => {
            out.push(1); // jsonb's binary format version
            out.extend_from_slice(v);
        }
        PgEncode::Date => {
            let days = parse_date(v).ok_or_else(|| invalid("date", v))?;
            out.extend_from_slice(&days.to_be_bytes());
        }
        PgEncode::Time => {
            let mut c = ByteCursor::new(v);
            let us = time(&mut c)
                .filter(|_| c.done())
                .ok_or_else(|| invalid("time", v))?;
            out.extend_from_slice(&us.to_be_bytes());
        }
        PgEncode::Timestamp => {
            let us = parse_timestamp(v).ok_or_else(|| invalid("timestamp", v))?;
            out.extend_from_slice(&us.to_be_bytes());
        }
        PgEncode::Uuid => {
            let bytes = canonical::parse_uuid(v).map_err(|_| invalid("uuid", v))?;
            out.extend_from_slice(&bytes);
        }
    }
    Ok(())
}

/// Canonical decimal text (`-12.5`, `NaN`, `Infinity`) as numeric's binary form: digit count,
/// weight, sign, display scale, then base-10000 digits.
fn write_numeric(v: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let special = |sign: u16, out: &mut Vec<u8>| {
        for x in [0u16, 0, sign, 0] {
            out.extend_from_slice(&x.to_be_bytes());
        }
    };
    match v {
        b"NaN" => {
            special(0xC000, out);
            return Some(());
        }
        b"Infinity" => {
            special(0xD000, out);
            return Some(());
        }
        b"-Infinity" => {
            special(0xF000, out);
            return Some(());
        }
        _ => {}
    }
    let (neg, body) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, &[][..]),
    };
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let int = &int[int.iter().position(|&c| c != b'0').unwrap_or(int.len())..];
    let dscale = u16::try_from(frac.len()).ok()?;
    // Digits aligned on base-10000 groups: zeros to the left of the integer part and to the
    // right of the fraction.
    let pad_left = (4 - int.len() % 4) % 4;
    let pad_right = (4 - frac.len() % 4) % 4;
    let total = pad_left + int.len() + frac.len() + pad_right;
    let digit = |i: usize| -> u16 {
        let c = if i < pad_left {
            b'0'
        } else if i < pad_left + int.len() {
            int[i - pad_left]
        } else if i < pad_left + int.len() + frac.len() {
            frac[i - pad_left - int.len()]
        } else {
            b'0'
        };
        u16::from(c - b'0')
    };
    let mut groups: Vec<u16> = (0..total / 4)
        .map(|g| (0..4).fold(0u16, |acc, k| acc * 10 + digit(4 * g + k)))
        .collect();
    let mut weight = i32::try_from((pad_left + int.len()) / 4).ok()? - 1;
    let lead = groups.iter().position(|&g| g != 0).unwrap_or(groups.len());
    groups.drain(..lead);
    weight -= i32::try_from(lead).ok()?;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let ndigits = u16::try_from(groups.len()).ok()?;
    let (weight, sign) = if groups.is_empty() {
        (0, 0)
    } else {
        (i16::try_from(weight).ok()?, if neg { 0x4000 } else { 0 })
    };
    for x in [ndigits, weight.cast_unsigned(), sign, dscale] {
        out.extend_from_slice(&x.to_be_bytes());
    }
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(())
}

const USECS_PER_DAY: i64 = 86_400_000_000;

/// `YYYY-MM-DD`, `infinity`, or PostgreSQL's ISO form outside years 1–9999 (`4713-11-24 BC`,
/// `10000-01-01`) as days from 2000-01-01.
fn parse_date(v: &[u8]) -> Option<i32> {
    match v {
        b"infinity" => return Some(i32::MAX),
        b"-infinity" => return Some(i32::MIN),
        _ => {}
    }
    let mut c = ByteCursor::new(v);
    let d = date(&mut c)?;
    let d = bc(&mut c, d)?;
    c.done().then_some(())?;
    i32::try_from(d.signed_duration_since(super::epoch()).num_days()).ok()
}

/// Canonical timestamps (`YYYY-MM-DDTHH:MM:SS[.f][Z]`), `infinity`, and PostgreSQL's ISO form
/// outside years 1–9999 (`YYYY-MM-DD HH:MM:SS[.f][+00][ BC]`) as microseconds from 2000-01-01.
fn parse_timestamp(v: &[u8]) -> Option<i64> {
    match v {
        b"infinity" => return Some(i64::MAX),
        b"-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let mut c = ByteCursor::new(v);
    let d = date(&mut c)?;
    match c.next_byte()? {
        b'T' | b' ' => {}
        _ => return None,
    }
    let us = time(&mut c)?;
    if c.peek() == Some(b'Z') {
        c.next_byte();
    } else if c.rest().starts_with(b"+00") {
        c.skip(3);
    }
    let d = bc(&mut c, d)?;
    c.done().then_some(())?;
    let days = d.signed_duration_since(super::epoch()).num_days();
    days.checked_mul(USECS_PER_DAY)?.checked_add(us)
}

/// Exactly two digits (not a prefix of more).
fn two(c: &mut ByteCursor<'_>) -> Option<u32> {
    let before = c.rest().len();
    let v = c.number(2)?;
    (before - c.rest().len() == 2).then(|| u32::try_from(v).ok())?
}

/// `Y…Y-MM-DD` (at least four year digits).
fn date(c: &mut ByteCursor<'_>) -> Option<(i64, u32, u32)> {
    let y = c.number(4)?;
    c.expect(b'-')?;
    let m = two(c)?;
    c.expect(b'-')?;
    let d = two(c)?;
    Some((y, m, d))
}

/// The date, with a trailing ` BC` turning year Y into the proleptic year 1 - Y.
fn bc(c: &mut ByteCursor<'_>, (y, m, d): (i64, u32, u32)) -> Option<NaiveDate> {
    let year = if c.rest() == b" BC" {
        c.skip(3);
        1 - y
    } else {
        y
    };
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, m, d)
}

/// `HH:MM:SS[.f]` (24:00:00 included) as microseconds.
fn time(c: &mut ByteCursor<'_>) -> Option<i64> {
    let h = i64::from(two(c)?);
    c.expect(b':')?;
    let mi = i64::from(two(c)?);
    c.expect(b':')?;
    let s = i64::from(two(c)?);
    let mut micros = 0i64;
    if c.peek() == Some(b'.') {
        c.next_byte();
        let frac = c.digit_run();
        if frac.is_empty() || frac.len() > 6 {
            return None;
        }
        for k in 0..6 {
            micros = micros * 10 + frac.get(k).map_or(0, |d| i64::from(d - b'0'));
        }
    }
    let us = ((h * 60 + mi) * 60 + s) * 1_000_000 + micros;
    (mi < 60 && s < 60 && us <= USECS_PER_DAY).then_some(us)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_numeric(text.as_bytes(), &mut out).unwrap();
        out
    }

    fn numeric_parts(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for v in [ndigits, weight.cast_unsigned(), sign, dscale] {
            raw.extend_from_slice(&v.to_be_bytes());
        }
        for d in digits {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_become_base_10000_digits() {
        assert_eq!(
            numeric("12345678901234567890.123456789"),
            numeric_parts(
                8,
                4,
                0,
                9,
                &[1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000]
            )
        );
        assert_eq!(numeric("-0.0001"), numeric_parts(1, -1, 0x4000, 4, &[1]));
        assert_eq!(numeric("0"), numeric_parts(0, 0, 0, 0, &[]));
        assert_eq!(numeric("10000"), numeric_parts(1, 1, 0, 0, &[1]));
        assert_eq!(numeric("12.5"), numeric_parts(2, 0, 0, 1, &[12, 5000]));
        assert_eq!(numeric("NaN"), numeric_parts(0, 0, 0xC000, 0, &[]));
        assert_eq!(numeric("-Infinity"), numeric_parts(0, 0, 0xF000, 0, &[]));
        for bad in ["", "-", "1e5", "1.2.3", ".5", "abc"] {
            assert!(
                write_numeric(bad.as_bytes(), &mut Vec::new()).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn numerics_round_trip_through_the_reader() {
        for text in [
            "0",
            "1",
            "-1",
            "0.5",
            "12.34",
            "99999999.99",
            "1000000",
            "-0.00000001",
            "123456789012345678901234567890",
        ] {
            let mut canonical = Vec::new();
            super::super::read::write_numeric(&numeric(text), &mut canonical).unwrap();
            assert_eq!(String::from_utf8(canonical).unwrap(), text);
        }
    }

    #[test]
    fn dates_and_timestamps_count_from_2000() {
        assert_eq!(parse_date(b"2000-01-01"), Some(0));
        assert_eq!(parse_date(b"1999-12-31"), Some(-1));
        assert_eq!(parse_date(b"infinity"), Some(i32::MAX));
        assert_eq!(parse_date(b"4714-11-24 BC"), Some(-2_451_545)); // Julian day 0
        let days = |y, m, d| {
            i32::try_from(
                NaiveDate::from_ymd_opt(y, m, d)
                    .unwrap()
                    .signed_duration_since(crate::pg::epoch())
                    .num_days(),
            )
            .unwrap()
        };
        assert_eq!(parse_date(b"10000-01-01"), Some(days(10000, 1, 1)));
        assert_eq!(parse_date(b"2000-02-30"), None);
        assert_eq!(parse_date(b"January 8, 1999"), None);
        assert_eq!(parse_timestamp(b"2000-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(parse_timestamp(b"2000-01-02T00:00:00"), Some(USECS_PER_DAY));
        assert_eq!(
            parse_timestamp(b"10000-01-01 01:02:03.5+00"),
            Some(i64::from(days(10000, 1, 1)) * USECS_PER_DAY + 3_723_500_000)
        );
        assert_eq!(parse_timestamp(b"-infinity"), Some(i64::MIN));
        assert_eq!(parse_timestamp(b"2000-01-01T00:60:00"), None);
        assert_eq!(time(&mut ByteCursor::new(b"24:00:00")), Some(USECS_PER_DAY));
        assert_eq!(
            time(&mut ByteCursor::new(b"13:14:15.000001")),
            Some(47_655_000_001)
        );
        assert_eq!(time(&mut ByteCursor::new(b"13:14:155")), None);
    }

    #[test]
    fn integers_parse_within_their_width() {
        assert_eq!(parse_int::<i64>(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int::<i64>(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int::<i64>(b"9223372036854775808"), None);
        assert_eq!(parse_int::<i16>(b"-32768"), Some(i16::MIN));
        assert_eq!(parse_int::<i16>(b"32768"), None);
        assert_eq!(parse_int::<i32>(b"0"), Some(0));
        for bad in ["", "-", "+1", "1.0", " 1", "1e3"] {
            assert_eq!(parse_int::<i64>(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_bad_value_leaves_the_buffer_as_it_was() {
        let mut out = b"keep".to_vec();
        assert!(write_field(PgEncode::Int4, Some(b"4294967296"), &mut out).is_err());
        assert_eq!(out, b"keep");
        write_field(PgEncode::Int2, Some(b"-2"), &mut out).unwrap();
        assert_eq!(&out[4..], &[0, 0, 0, 2, 0xff, 0xfe]);
        write_field(PgEncode::Bool, None, &mut out).unwrap();
        assert_eq!(&out[10..], &[0xff; 4]);
    }
}
