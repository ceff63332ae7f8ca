//! Canonical text of values, per logical type (`content-digest.md`, "Value encoding").
//!
//! Every function appends to a caller-owned buffer so that readers can encode straight into a
//! batch without an allocation per value.

use std::fmt::Write as _;

/// A value that cannot be read as its column's logical type (the caller then applies the
/// spec's `other` rule, or reports the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is not a valid {expected} value")]
pub struct InvalidValue {
    pub expected: &'static str,
    pub what: String,
}

impl InvalidValue {
    pub fn new(expected: &'static str, raw: &[u8]) -> Self {
        let mut what = String::from_utf8_lossy(&raw[..raw.len().min(40)]).into_owned();
        if raw.len() > 40 {
            what.push('…');
        }
        Self {
            expected,
            what: format!("{what:?}"),
        }
    }
}

/// Appends `true` or `false`.
pub fn write_bool(value: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

/// Appends a signed integer in base 10.
pub fn write_i64(value: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Appends an unsigned integer in base 10.
pub fn write_u64(value: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Appends the canonical form of an integer given as text (`+7`, `007`, `-0` are normalised).
pub fn write_int_text(text: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidValue> {
    let t = trim_ascii(text);
    let (neg, digits) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(InvalidValue::new("int", text));
    }
    let first = digits.iter().position(|&d| d != b'0');
    match first {
        None => out.push(b'0'),
        Some(i) => {
            if neg {
                out.push(b'-');
            }
            out.extend_from_slice(&digits[i..]);
        }
    }
    Ok(())
}

/// Appends the canonical decimal form of a decimal number in text (plain or exponent form,
/// `NaN`, `Infinity`, `-Infinity`).
pub fn write_decimal_text(text: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidValue> {
    let t = trim_ascii(text);
    let (neg, body) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if body.eq_ignore_ascii_case(b"nan") || body.eq_ignore_ascii_case(b"snan") {
        out.extend_from_slice(b"NaN");
        return Ok(());
    }
    if body.eq_ignore_ascii_case(b"infinity") || body.eq_ignore_ascii_case(b"inf") {
        out.extend_from_slice(if neg { b"-Infinity" } else { b"Infinity" });
        return Ok(());
    }
    let bad = || InvalidValue::new("decimal", text);
    let (mantissa, exponent) = match body.iter().position(|&c| c == b'e' || c == b'E') {
        Some(i) => (&body[..i], parse_exponent(&body[i + 1..]).ok_or_else(bad)?),
        None => (body, 0i64),
    };
    let (int_part, frac_part) = match mantissa.iter().position(|&c| c == b'.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, &b""[..]),
    };
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.iter().all(u8::is_ascii_digit)
        || !frac_part.iter().all(u8::is_ascii_digit)
    {
        return Err(bad());
    }
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| bad())?;
    write_decimal_parts(neg, int_part, frac_part, exponent - frac_len, out);
    Ok(())
}

fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if neg { -value } else { value })
}

/// Appends `digits × 10^exp` canonically (the digits are the two slices read as one; leading
/// and trailing zeros are allowed).
pub fn write_decimal_parts(neg: bool, a: &[u8], b: &[u8], mut exp: i64, out: &mut Vec<u8>) {
    // The digits are a ++ b, read without copying them together.
    let total = a.len() + b.len();
    let at = |i: usize| if i < a.len() { a[i] } else { b[i - a.len()] };
    let mut start = 0;
    while start < total && at(start) == b'0' {
        start += 1;
    }
    let mut end = total;
    while end > start && at(end - 1) == b'0' {
        end -= 1;
        exp += 1;
    }
    if start == end {
        out.push(b'0');
        return;
    }
    if neg {
        out.push(b'-');
    }
    let push_range = |out: &mut Vec<u8>, from: usize, to: usize| {
        if from < a.len() {
            out.extend_from_slice(&a[from..to.min(a.len())]);
        }
        if to > a.len() {
            out.extend_from_slice(&b[from.max(a.len()) - a.len()..to - a.len()]);
        }
    };
    let len = i64::try_from(end - start).unwrap_or(i64::MAX);
    if exp >= 0 {
        push_range(out, start, end);
        out.extend(std::iter::repeat_n(b'0', usize::try_from(exp).unwrap_or(0)));
    } else {
        let point = len + exp;
        if point <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(
                b'0',
                usize::try_from(-point).unwrap_or(0),
            ));
            push_range(out, start, end);
        } else {
            let p = start + usize::try_from(point).unwrap_or(0);
            push_range(out, start, p);
            out.push(b'.');
            push_range(out, p, end);
        }
    }
}

/// Appends the shortest round-trip text of a 64-bit float, in positional notation.
pub fn write_f64(value: f64, out: &mut Vec<u8>) {
    write_float(value, value, out);
}

/// Appends the shortest round-trip text of a 32-bit float (shortest in 32-bit width).
pub fn write_f32(value: f32, out: &mut Vec<u8>) {
    write_float(value, f64::from(value), out);
}

/// `shown` prints the value in its own width; `value` is the same number widened (which
/// keeps NaN, the infinities, the sign and zero).
fn write_float(shown: impl std::fmt::Display, value: f64, out: &mut Vec<u8>) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
    } else if value == 0.0 {
        // -0 is 0.
        out.push(b'0');
    } else {
        // std's Display is the shortest round-trip form in the value's own width, never in
        // exponent notation, with no fraction for integral values: exactly the canonical text.
        let _ = std::io::Write::write_fmt(out, format_args!("{shown}"));
    }
}

/// Parses a float from text as the engines print it (`1e-16`, `-inf`, `NaN`, `Infinity`).
pub fn parse_float(text: &[u8]) -> Result<f64, InvalidValue> {
    let t = std::str::from_utf8(trim_ascii(text)).map_err(|_| InvalidValue::new("float", text))?;
    match t {
        "Infinity" | "inf" | "+Infinity" => Ok(f64::INFINITY),
        "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => t
            .parse::<f64>()
            .map_err(|_| InvalidValue::new("float", text)),
    }
}

/// Appends `n` in exactly `width` decimal digits (zero-padded; `n` must fit).
fn push_digits(mut n: u32, width: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        // n % 10 < 10: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (n % 10) as u8;
        *slot = b'0' + digit;
        n /= 10;
    }
}

/// Appends `YYYY-MM-DD`. The caller checks that the year is within 1–9999.
pub fn write_date(year: i32, month: u32, day: u32, out: &mut Vec<u8>) {
    match u32::try_from(year) {
        Ok(y) if y <= 9999 => push_digits(y, 4, out),
        _ => {
            let mut s = String::with_capacity(6);
            let _ = write!(s, "{year:04}");
            out.extend_from_slice(s.as_bytes());
        }
    }
    out.push(b'-');
    push_digits(month, 2, out);
    out.push(b'-');
    push_digits(day, 2, out);
}

/// Appends `HH:MM:SS` and, when the fraction is non-zero, `.` and its digits without trailing
/// zeros.
pub fn write_time(hour: u32, minute: u32, second: u32, micros: u32, out: &mut Vec<u8>) {
    if hour > 99 {
        write_u64(u64::from(hour), out);
    } else {
        push_digits(hour, 2, out);
    }
    out.push(b':');
    push_digits(minute, 2, out);
    out.push(b':');
    push_digits(second, 2, out);
    let mut m = micros % 1_000_000;
    if m != 0 {
        out.push(b'.');
        let mut digits = 6;
        while m.is_multiple_of(10) {
            m /= 10;
            digits -= 1;
        }
        push_digits(m, digits, out);
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS[.f]`.
pub fn write_timestamp(date: (i32, u32, u32), time: (u32, u32, u32, u32), out: &mut Vec<u8>) {
    write_date(date.0, date.1, date.2, out);
    out.push(b'T');
    write_time(time.0, time.1, time.2, time.3, out);
}

/// Appends a lowercase `8-4-4-4-12` UUID.
pub fn write_uuid(bytes: &[u8; 16], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

/// Parses a UUID in the forms Python's `uuid.UUID` accepts: hex digits with optional hyphens,
/// optional braces or `urn:uuid:` prefix, any case.
pub fn parse_uuid(text: &[u8]) -> Result<[u8; 16], InvalidValue> {
    let bad = || InvalidValue::new("uuid", text);
    let mut t = trim_ascii(text);
    if t.len() >= 9 && t[..9].eq_ignore_ascii_case(b"urn:uuid:") {
        t = &t[9..];
    }
    if t.first() == Some(&b'{') && t.last() == Some(&b'}') {
        t = &t[1..t.len() - 1];
    }
    let mut out = [0u8; 16];
    let mut n = 0usize;
    for &c in t {
        if c == b'-' {
            continue;
        }
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(bad()),
        };
        if n >= 32 {
            return Err(bad());
        }
        out[n / 2] |= if n.is_multiple_of(2) { v << 4 } else { v };
        n += 1;
    }
    if n != 32 {
        return Err(bad());
    }
    Ok(out)
}

/// Appends the canonical JSON of a JSON text: no insignificant whitespace, keys sorted by their
/// UTF-8 bytes (the last of duplicated keys wins), numbers by the decimal rule, minimal string
/// escapes.
pub fn write_json_text(text: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidValue> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|_| InvalidValue::new("json", text))?;
    write_json_value(&value, out).map_err(|_| InvalidValue::new("json", text))
}

fn write_json_value(value: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), InvalidValue> {
    use serde_json::Value as J;
    match value {
        J::Null => out.extend_from_slice(b"null"),
        J::Bool(b) => write_bool(*b, out),
        // With serde_json's `arbitrary_precision`, a number keeps its source text.
        J::Number(n) => write_decimal_text(n.as_str().as_bytes(), out)?,
        J::String(s) => write_json_string(s, out),
        J::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_value(item, out)?;
            }
            out.push(b']');
        }
        J::Object(map) => {
            // serde_json's default map is a BTreeMap<String, _>: String order is byte order.
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(k, out);
                out.push(b':');
                write_json_value(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(JsonOut(out), "\\u{:04x}", c as u32);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

struct JsonOut<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for JsonOut<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Removes trailing spaces (the `char(n)` rule).
pub fn trim_fixed(text: &[u8]) -> &[u8] {
    let end = text.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &text[..end]
}

fn trim_ascii(text: &[u8]) -> &[u8] {
    text.trim_ascii()
}

/// A date and time of day parsed from ISO 8601-like text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTimeParts {
    pub date: Option<(i32, u32, u32)>,
    pub time: Option<(u32, u32, u32, u32)>,
    /// Offset east of UTC in seconds, when the text carried `Z` or `±HH:MM`.
    pub offset_secs: Option<i32>,
}

/// Parses `YYYY-MM-DD`, `HH:MM[:SS[.f…]]`, or both joined by `T` or a space, with an optional
/// `Z` or `±HH[:MM]` offset: the forms SQLite's date functions and MySQL's text protocol use.
/// Fractions beyond microseconds are truncated. Ranges are checked (month 1–12, day within
/// the month, hour 0–23), so `0000-00-00` and `24:00:00` are rejected.
pub fn parse_datetime(text: &[u8]) -> Option<DateTimeParts> {
    let t = trim_ascii(text);
    let mut p = crate::ByteCursor::new(t);
    let mut parts = DateTimeParts {
        date: None,
        time: None,
        offset_secs: None,
    };
    if t.len() >= 10 && t[4] == b'-' {
        let y = p.digits(4)?;
        p.expect(b'-')?;
        let m = p.digits(2)?;
        p.expect(b'-')?;
        let d = p.digits(2)?;
        let year = i32::try_from(y).ok()?;
        chrono::NaiveDate::from_ymd_opt(year, m, d)?;
        parts.date = Some((year, m, d));
        if p.done() {
            return Some(parts);
        }
        match p.next_byte()? {
            b'T' | b' ' => {}
            _ => return None,
        }
    }
    let h = p.digits(2)?;
    p.expect(b':')?;
    let mi = p.digits(2)?;
    let mut s = 0;
    let mut micros = 0;
    if p.peek() == Some(b':') {
        p.next_byte();
        s = p.digits(2)?;
        if p.peek() == Some(b'.') {
            p.next_byte();
            let frac = p.digit_run();
            if frac.is_empty() {
                return None;
            }
            for k in 0..6 {
                micros = micros * 10 + frac.get(k).map_or(0, |c| u32::from(c - b'0'));
            }
        }
    }
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    parts.time = Some((h, mi, s, micros));
    match p.peek() {
        None => {}
        Some(b'Z') | Some(b'z') => {
            p.next_byte();
            parts.offset_secs = Some(0);
        }
        Some(sign @ (b'+' | b'-')) => {
            p.next_byte();
            let oh = p.digits(2)?;
            let om = if p.peek() == Some(b':') {
                p.next_byte();
                p.digits(2)?
            } else if p.done() {
                0
            } else {
                p.digits(2)?
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = i32::try_from(oh * 3600 + om * 60).ok()?;
            parts.offset_secs = Some(if sign == b'-' { -secs } else { secs });
        }
        Some(_) => return None,
    }
    p.done().then_some(parts)
}

/// Appends the canonical timestamp of parsed parts, converted to UTC when an offset is present.
/// Returns `None` when the parts have no date, or the UTC date leaves years 1–9999.
pub fn write_parts_as_timestamp(parts: &DateTimeParts, out: &mut Vec<u8>) -> Option<()> {
    let (y, m, d) = parts.date?;
    let (h, mi, s, us) = parts.time.unwrap_or((0, 0, 0, 0));
    let mut dt = chrono::NaiveDate::from_ymd_opt(y, m, d)?.and_hms_micro_opt(h, mi, s, us)?;
    if let Some(off) = parts.offset_secs {
        dt -= chrono::TimeDelta::seconds(i64::from(off));
    }
    write_naive_datetime(&dt, out)
}

/// Appends a chrono datetime canonically; `None` outside years 1–9999.
pub fn write_naive_datetime(dt: &chrono::NaiveDateTime, out: &mut Vec<u8>) -> Option<()> {
    use chrono::{Datelike, Timelike};
    if !(1..=9999).contains(&dt.year()) {
        return None;
    }
    write_timestamp(
        (dt.year(), dt.month(), dt.day()),
        (dt.hour(), dt.minute(), dt.second(), dt.nanosecond() / 1000),
        out,
    );
    Some(())
}

/// Appends the canonical text of a value given as text (MySQL's text protocol, SQLite TEXT,
/// PostgreSQL's text output), read as `logical`. On error nothing is appended, and the caller
/// applies the spec's `other` rule or reports the value.
pub fn write_from_text(
    logical: crate::LogicalType,
    text: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), InvalidValue> {
    let start = out.len();
    let result = write_from_text_inner(logical, text, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_from_text_inner(
    logical: crate::LogicalType,
    text: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), InvalidValue> {
    use crate::LogicalType as L;
    match logical {
        L::Bool => {
            let t = trim_ascii(text);
            let v = if t.eq_ignore_ascii_case(b"true") || t.eq_ignore_ascii_case(b"t") {
                true
            } else if t.eq_ignore_ascii_case(b"false") || t.eq_ignore_ascii_case(b"f") {
                false
            } else {
                // An integer: non-zero is true (MySQL's tinyint(1)).
                let digits = match t.split_first() {
                    Some((b'-' | b'+', rest)) => rest,
                    _ => t,
                };
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(InvalidValue::new("bool", text));
                }
                digits.iter().any(|&c| c != b'0')
            };
            write_bool(v, out);
        }
        L::Int => write_int_text(text, out)?,
        L::Decimal => write_decimal_text(text, out)?,
        L::Float32 => {
            // Rounding to the column's width is the point: a 4-byte float read as a double.
            #[allow(clippy::cast_possible_truncation)]
            let v = parse_float(text)? as f32;
            write_f32(v, out);
        }
        L::Float64 => write_f64(parse_float(text)?, out),
        L::Text | L::Bytes | L::Other => out.extend_from_slice(text),
        L::FixedText => out.extend_from_slice(trim_fixed(text)),
        L::Date => {
            if let Some(inf) = pg_infinity(text) {
                out.extend_from_slice(inf);
                return Ok(());
            }
            let p = parse_datetime(text).ok_or_else(|| InvalidValue::new("date", text))?;
            match (p.date, p.time, p.offset_secs) {
                (Some((y, m, d)), None, None) if (1..=9999).contains(&y) => {
                    write_date(y, m, d, out)
                }
                _ => return Err(InvalidValue::new("date", text)),
            }
        }
        L::Time => {
            let p = parse_datetime(text).ok_or_else(|| InvalidValue::new("time", text))?;
            match (p.date, p.time, p.offset_secs) {
                (None, Some((h, m, s, us)), None) => write_time(h, m, s, us, out),
                _ => return Err(InvalidValue::new("time", text)),
            }
        }
        L::Timestamp | L::TimestampTz => {
            if let Some(inf) = pg_infinity(text) {
                out.extend_from_slice(inf);
                return Ok(());
            }
            let p = parse_datetime(text).ok_or_else(|| InvalidValue::new("timestamp", text))?;
            write_parts_as_timestamp(&p, out)
                .ok_or_else(|| InvalidValue::new("timestamp", text))?;
            if logical == L::TimestampTz {
                out.push(b'Z');
            }
        }
        L::Uuid => write_uuid(&parse_uuid(text)?, out),
        L::Json => write_json_text(text, out)?,
    }
    Ok(())
}

fn pg_infinity(text: &[u8]) -> Option<&'static [u8]> {
    match text {
        b"infinity" => Some(b"infinity"),
        b"-infinity" => Some(b"-infinity"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_and_times_are_zero_padded() {
        let mut out = Vec::new();
        super::write_timestamp((2024, 2, 9), (7, 5, 3, 120_000), &mut out);
        assert_eq!(out, b"2024-02-09T07:05:03.12");
        out.clear();
        super::write_date(1, 12, 31, &mut out);
        super::write_time(24, 0, 0, 0, &mut out);
        super::write_time(0, 0, 0, 1, &mut out);
        super::write_time(123, 0, 59, 999_999, &mut out);
        assert_eq!(out, b"0001-12-3124:00:0000:00:00.000001123:00:59.999999");
    }

    use super::*;

    fn dec(s: &str) -> String {
        let mut out = Vec::new();
        write_decimal_text(s.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decimals_are_canonical() {
        assert_eq!(dec("1.5000"), "1.5");
        assert_eq!(dec("-0.000"), "0");
        assert_eq!(dec("00123.4500"), "123.45");
        assert_eq!(dec("1E+3"), "1000");
        assert_eq!(dec("-0.0001"), "-0.0001");
        assert_eq!(dec("1.5e-3"), "0.0015");
        assert_eq!(dec(".5"), "0.5");
        assert_eq!(dec("5."), "5");
        assert_eq!(dec("-Infinity"), "-Infinity");
        assert_eq!(dec("NaN"), "NaN");
        let mut out = Vec::new();
        assert!(write_decimal_text(b"1.2.3", &mut out).is_err());
        assert!(write_decimal_text(b"", &mut out).is_err());
        assert!(write_decimal_text(b"e5", &mut out).is_err());
    }

    #[test]
    fn floats_are_shortest_and_positional() {
        let f = |x: f64| {
            let mut o = Vec::new();
            write_f64(x, &mut o);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(f(1e21), "1000000000000000000000");
        assert_eq!(f(1e-7), "0.0000001");
        assert_eq!(f(-0.0), "0");
        assert_eq!(f(1.0), "1");
        let mut o = Vec::new();
        write_f32(123456.79, &mut o);
        assert_eq!(o, b"123456.79");
    }

    #[test]
    fn datetimes_parse_in_sqlite_forms() {
        let p = parse_datetime(b"2024-07-10 09:30:00.5+08:00").unwrap();
        let mut out = Vec::new();
        write_parts_as_timestamp(&p, &mut out).unwrap();
        assert_eq!(out, b"2024-07-10T01:30:00.5");
        assert!(parse_datetime(b"0000-00-00").is_none());
        assert!(parse_datetime(b"24:00:00").is_none());
        assert!(parse_datetime(b"2024-02-30").is_none());
        assert_eq!(parse_datetime(b"12:30").unwrap().time, Some((12, 30, 0, 0)));
        assert!(parse_datetime(b"2024-07-10Tjunk").is_none());
    }

    #[test]
    fn uuids_parse_and_print() {
        let u = parse_uuid(b"{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}").unwrap();
        let mut out = Vec::new();
        write_uuid(&u, &mut out);
        assert_eq!(out, b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert!(parse_uuid(b"a0eebc99").is_err());
    }
}
