//! Writing canonical rows into MySQL/MariaDB with prepared multi-row INSERT statements.

use sqlx::mysql::MySqlConnection;
use std::fmt::Write as _;

use sqlx::Executor;
use upkeep_core::{values, Batch, Engine, LogicalType, Table};

use super::err;
use crate::quote;
use crate::{DbError, Target};

/// Statements are cut at about this size, well below the default max_allowed_packet (16 MiB).
const STATEMENT_BYTES: usize = 4 << 20;

/// Placeholders one prepared statement may hold.
const MAX_PLACEHOLDERS: usize = 65_535;

/// Rows per prepared INSERT, at most. MariaDB's per-execution work grows faster than the
/// parameter count, and each statement is a round trip: restoring the benchmark's 6.4 M rows
/// took 21.8-23.5 s at 250 rows a statement, 23.5-25.4 s at 500, 28.4 s at 2000 and
/// 30.9-32.2 s at 64.
const PREPARED_ROWS: usize = 250;

/// Loads a batch with prepared multi-row INSERTs of up to [`PREPARED_ROWS`] rows (binary
/// protocol: the server binds values to a statement it parsed once instead of parsing every
/// value of a text statement); the rows that do not fill a whole statement go as text.
pub(crate) async fn write_batch(
    conn: &mut MySqlConnection,
    target: &Target,
    table: &Table,
    batch: &Batch,
) -> Result<u64, DbError> {
    let context = format!("writing table {}", table.name);
    let large = check_packet_size(conn, target, table, batch).await?;
    let columns = table.written_columns().count();
    // Wide rows: fewer of them a statement, so that a statement stays near STATEMENT_BYTES;
    // a batch with a large row goes a row a statement, all bound (text would double bytes).
    let by_bytes = if large {
        1
    } else {
        STATEMENT_BYTES * batch.len() / batch.byte_len().max(1)
    };
    let per_statement = (MAX_PLACEHOLDERS / columns.max(1))
        .min(PREPARED_ROWS)
        .min(by_bytes.max(1))
        .min(batch.len());
    if columns == 0 || per_statement == 0 {
        return write_batch_text(conn, target, table, batch.rows()).await;
    }
    let cols = table.written_columns().map(|c| c.name.as_str());
    let one_row = format!("({})", vec!["?"; columns].join(","));
    let sql = format!(
        "INSERT INTO {} ({}) VALUES {}",
        quote::table(Engine::Mysql, &table.name),
        quote::ident_list(Engine::Mysql, cols),
        vec![one_row.as_str(); per_statement].join(",")
    );
    let bad = |m: String| DbError::query(target.display(), context.clone(), m);
    let full = batch.len() / per_statement * per_statement;
    let mut rows = batch.rows();
    let mut statement_rows: Vec<&[u8]> = Vec::with_capacity(per_statement);
    for _ in 0..full / per_statement {
        statement_rows.clear();
        statement_rows.extend(rows.by_ref().take(per_statement));
        let bind = || {
            let mut query = sqlx::query(&sql);
            for row in &statement_rows {
                let mut bound = 0;
                for (i, value) in values(row).enumerate() {
                    let value = value.map_err(|e| bad(e.to_string()))?;
                    let Some(column) = table.columns.get(i).filter(|c| c.generated.is_none())
                    else {
                        continue;
                    };
                    let value = MyValue::of(column.logical, value)
                        .map_err(|m| bad(format!("column {:?}: {m}", column.name)))?;
                    query = value.bind(query);
                    bound += 1;
                }
                if bound != columns {
                    return Err(bad(format!("a row has {bound} of {columns} values")));
                }
            }
            Ok(query)
        };
        let mut attempt = 0;
        loop {
            match bind()?.execute(&mut *conn).await {
                Ok(_) => break,
                Err(e) => match deadlock_pause(&e, table, &mut attempt) {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => return Err(err(target, &context)(e)),
                },
            }
        }
    }
    Ok(full as u64 + write_batch_text(conn, target, table, rows).await?)
}

/// Rows above this size make a write ask the server for its `max_allowed_packet`.
const LARGE_ROW: usize = 1 << 20;

/// Whether `batch` holds a row of [`LARGE_ROW`] or more; then fails, naming the table and
/// the setting, when such a row cannot fit in one packet to the server, which would close the
/// connection ("Connection reset by peer").
async fn check_packet_size(
    conn: &mut MySqlConnection,
    target: &Target,
    table: &Table,
    batch: &Batch,
) -> Result<bool, DbError> {
    let largest = batch.rows().map(<[u8]>::len).max().unwrap_or(0);
    if largest < LARGE_ROW {
        return Ok(false);
    }
    let row = conn
        .fetch_one("SELECT @@max_allowed_packet")
        .await
        .map_err(err(target, "reading max_allowed_packet"))?;
    let limit = super::text(&row, 0)
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    // Bound in a statement of its own: the row, and the statement around it.
    let needed = largest + 1024;
    if needed > limit {
        return Err(DbError::PacketTooLarge {
            target: target.display().to_owned(),
            table: table.name.to_string(),
            bytes: needed as u64,
            limit: limit as u64,
        });
    }
    Ok(true)
}

/// Two sessions loading one table with a unique key can deadlock on its index locks. InnoDB
/// then rolls back one of them whole: for an autocommit INSERT (every statement here), that
/// is the statement alone, which simply runs again, up to this many times.
const DEADLOCK_RETRIES: u32 = 5;
const DEADLOCK_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// How long to wait before running a statement again after `e`: `None` unless `e` is a
/// deadlock (ER_LOCK_DEADLOCK 1213, SQLSTATE 40001) and `attempt` (counted here) has retries
/// left.
fn deadlock_pause(
    e: &sqlx::Error,
    table: &Table,
    attempt: &mut u32,
) -> Option<std::time::Duration> {
    let deadlock = matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("40001"));
    if !deadlock || *attempt >= DEADLOCK_RETRIES {
        return None;
    }
    *attempt += 1;
    tracing::debug!(table = %table.name, attempt = *attempt, "deadlock: the INSERT runs again");
    Some(DEADLOCK_PAUSE * *attempt)
}

/// Runs an autocommit statement, again after a deadlock.
async fn execute_retrying(
    conn: &mut MySqlConnection,
    table: &Table,
    sql: &str,
) -> Result<(), sqlx::Error> {
    let mut attempt = 0;
    loop {
        match conn.execute(sql).await {
            Ok(_) => return Ok(()),
            Err(e) => match deadlock_pause(&e, table, &mut attempt) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(e),
            },
        }
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>;

/// A canonical value as MySQL takes it, written as a literal or bound as a parameter.
#[derive(Debug, PartialEq)]
enum MyValue<'a> {
    Null,
    /// Digits (and a sign or point): a literal as it is, an integer parameter when it fits.
    Number(&'a str),
    Float(f64),
    Text(std::borrow::Cow<'a, str>),
    Bytes(&'a [u8]),
}

impl<'a> MyValue<'a> {
    fn of(logical: LogicalType, value: Option<&'a [u8]>) -> Result<Self, String> {
        use LogicalType as L;
        let Some(v) = value else {
            return Ok(Self::Null);
        };
        let Ok(t) = std::str::from_utf8(v) else {
            return Ok(Self::Bytes(v));
        };
        Ok(match logical {
            L::Bool => Self::Number(if t == "true" { "1" } else { "0" }),
            L::Int | L::Decimal
                if t.bytes()
                    .all(|c| c.is_ascii_digit() || c == b'-' || c == b'.') =>
            {
                Self::Number(t)
            }
            L::Float32 | L::Float64 => {
                if matches!(t, "NaN" | "Infinity" | "-Infinity") {
                    return Err(format!("MySQL cannot store the float {t}"));
                }
                // A 4-byte float goes as its exact value: MariaDB refuses 3.4028235e38 as out
                // of FLOAT's range.
                let value = match logical {
                    L::Float32 => t.parse::<f32>().map(f64::from),
                    _ => t.parse::<f64>(),
                };
                Self::Float(value.map_err(|_| format!("{t:?} is not a float"))?)
            }
            L::Timestamp => Self::Text(t.replacen('T', " ", 1).into()),
            L::TimestampTz => Self::Text(
                t.strip_suffix('Z')
                    .unwrap_or(t)
                    .replacen('T', " ", 1)
                    .into(),
            ),
            L::Bytes => Self::Bytes(v),
            _ => Self::Text(t.into()),
        })
    }

    fn bind(self, query: Query<'a>) -> Query<'a> {
        match self {
            Self::Null => query.bind(None::<&str>),
            Self::Number(t) => match t.parse::<i64>() {
                Ok(n) => query.bind(n),
                Err(_) => query.bind(t),
            },
            Self::Float(f) => query.bind(f),
            Self::Text(std::borrow::Cow::Borrowed(t)) => query.bind(t),
            Self::Text(std::borrow::Cow::Owned(t)) => query.bind(t),
            Self::Bytes(v) => query.bind(v),
        }
    }

    fn write_literal(&self, sql: &mut String) {
        match self {
            Self::Null => sql.push_str("NULL"),
            Self::Number(t) => sql.push_str(t),
            // In exponent form: a plain literal with a point is an exact DECIMAL to MySQL,
            // which overflows at 65 digits (1.7976931348623157e308, 5e-324).
            Self::Float(f) => {
                let _ = write!(sql, "{f:e}");
            }
            Self::Text(t) => sql.push_str(&quote::literal(Engine::Mysql, t)),
            Self::Bytes(v) => {
                sql.push_str("X'");
                sql.push_str(&hex::encode_upper(v));
                sql.push('\'');
            }
        }
    }
}

/// Loads rows with multi-row INSERT statements in text, cut at about [`STATEMENT_BYTES`].
async fn write_batch_text<'a>(
    conn: &mut MySqlConnection,
    target: &Target,
    table: &Table,
    rows: impl Iterator<Item = &'a [u8]>,
) -> Result<u64, DbError> {
    let context = format!("writing table {}", table.name);
    let cols = table.written_columns().map(|c| c.name.as_str());
    let head = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote::table(Engine::Mysql, &table.name),
        quote::ident_list(Engine::Mysql, cols)
    );
    let mut sql = String::with_capacity(STATEMENT_BYTES + 4096);
    let mut written = 0u64;
    for row in rows {
        // A wide row goes in a statement of its own rather than swell the current one past
        // the packet size (hex doubles bytes).
        if !sql.is_empty() && sql.len() + 2 * row.len() > STATEMENT_BYTES {
            execute_retrying(conn, table, &sql)
                .await
                .map_err(err(target, &context))?;
            sql.clear();
        }
        sql.push_str(if sql.is_empty() { &head } else { "," });
        sql.push('(');
        for (i, value) in values(row).enumerate() {
            let value = value
                .map_err(|e| DbError::query(target.display(), context.clone(), e.to_string()))?;
            if table.columns.get(i).is_some_and(|c| c.generated.is_some()) {
                continue;
            }
            if !sql.ends_with('(') {
                sql.push(',');
            }
            let logical = table
                .columns
                .get(i)
                .map_or(LogicalType::Other, |c| c.logical);
            write_literal(logical, value, &mut sql).map_err(|m| {
                DbError::query(
                    target.display(),
                    context.clone(),
                    format!("column {:?}: {m}", table.columns[i].name),
                )
            })?;
        }
        sql.push(')');
        written += 1;
        if sql.len() >= STATEMENT_BYTES {
            execute_retrying(conn, table, &sql)
                .await
                .map_err(err(target, &context))?;
            sql.clear();
        }
    }
    if !sql.is_empty() {
        execute_retrying(conn, table, &sql)
            .await
            .map_err(err(target, &context))?;
    }
    Ok(written)
}

/// One canonical value as a MySQL literal.
fn write_literal(
    logical: LogicalType,
    value: Option<&[u8]>,
    sql: &mut String,
) -> Result<(), String> {
    MyValue::of(logical, value)?.write_literal(sql);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        let lit = |l, v: Option<&[u8]>| {
            let mut s = String::new();
            write_literal(l, v, &mut s).map(|()| s)
        };
        assert_eq!(lit(LogicalType::Bool, Some(b"true")).unwrap(), "1");
        assert_eq!(lit(LogicalType::Text, None).unwrap(), "NULL");
        assert_eq!(lit(LogicalType::Bytes, Some(&[0, 255])).unwrap(), "X'00FF'");
        assert_eq!(
            lit(LogicalType::TimestampTz, Some(b"2024-01-02T03:04:05.5Z")).unwrap(),
            "'2024-01-02 03:04:05.5'"
        );
        assert_eq!(
            lit(LogicalType::Int, Some(b"1; DROP")).unwrap(),
            "'1; DROP'"
        );
        assert!(lit(LogicalType::Float64, Some(b"NaN")).is_err());
        // What a prepared INSERT binds is what the literal says.
        assert_eq!(
            MyValue::of(LogicalType::Int, Some(b"-5")),
            Ok(MyValue::Number("-5"))
        );
        assert_eq!(
            MyValue::of(LogicalType::Float32, Some(b"0.1")),
            Ok(MyValue::Float(f64::from(0.1f32)))
        );
        assert_eq!(
            MyValue::of(LogicalType::Text, Some(&[0xff])),
            Ok(MyValue::Bytes(&[0xff]))
        );
    }
}
