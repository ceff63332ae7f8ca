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
    let written: Vec<(usize, LogicalType)> = table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.generated.is_none())
        .map(|(i, c)| (i, c.logical))
        .collect();
    let per_statement = (MAX_PLACEHOLDERS / written.len().max(1))
        .min(PREPARED_ROWS)
        .min(batch.len());
    if written.is_empty() || per_statement == 0 {
        return write_batch_text(conn, target, table, batch.rows()).await;
    }
    let cols = table.written_columns().map(|c| c.name.as_str());
    let one_row = format!("({})", vec!["?"; written.len()].join(","));
    let sql = format!(
        "INSERT INTO {} ({}) VALUES {}",
        quote::table(Engine::Mysql, &table.name),
        quote::ident_list(Engine::Mysql, cols),
        vec![one_row.as_str(); per_statement].join(",")
    );
    let full = batch.len() / per_statement * per_statement;
    let mut rows = batch.rows();
    let mut done = 0usize;
    while done < full {
        let mut query = sqlx::query(&sql);
        for row in rows.by_ref().take(per_statement) {
            let values: Vec<Option<&[u8]>> = values(row)
                .collect::<Result<_, _>>()
                .map_err(|e| DbError::query(target.display(), context.clone(), e.to_string()))?;
            for &(i, logical) in &written {
                let value = values.get(i).copied().ok_or_else(|| {
                    DbError::query(target.display(), context.clone(), "a row lacks a value")
                })?;
                query = bind(query, logical, value).map_err(|m| {
                    DbError::query(
                        target.display(),
                        context.clone(),
                        format!("column {:?}: {m}", table.columns[i].name),
                    )
                })?;
            }
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(err(target, &context))?;
        done += per_statement;
    }
    Ok(full as u64 + write_batch_text(conn, target, table, rows).await?)
}

type Query<'q> = sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>;

/// Binds one canonical value as what `write_literal` would write.
fn bind<'q>(
    query: Query<'q>,
    logical: LogicalType,
    value: Option<&'q [u8]>,
) -> Result<Query<'q>, String> {
    use LogicalType as L;
    let Some(v) = value else {
        return Ok(query.bind(None::<&str>));
    };
    let Ok(t) = std::str::from_utf8(v) else {
        return Ok(query.bind(v));
    };
    Ok(match logical {
        L::Bool => query.bind(i8::from(t == "true")),
        L::Int => match t.parse::<i64>() {
            Ok(n) => query.bind(n),
            Err(_) => query.bind(t),
        },
        L::Float32 | L::Float64 => {
            if matches!(t, "NaN" | "Infinity" | "-Infinity") {
                return Err(format!("MySQL cannot store the float {t}"));
            }
            let value = match logical {
                L::Float32 => t.parse::<f32>().map(f64::from),
                _ => t.parse::<f64>(),
            };
            query.bind(value.map_err(|_| format!("{t:?} is not a float"))?)
        }
        L::Timestamp => query.bind(t.replacen('T', " ", 1)),
        L::TimestampTz => query.bind(t.strip_suffix('Z').unwrap_or(t).replacen('T', " ", 1)),
        L::Bytes => query.bind(v),
        _ => query.bind(t),
    })
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
            conn.execute(sql.as_str())
                .await
                .map_err(err(target, &context))?;
            sql.clear();
        }
    }
    if !sql.is_empty() {
        conn.execute(sql.as_str())
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
    use LogicalType as L;
    let Some(v) = value else {
        sql.push_str("NULL");
        return Ok(());
    };
    let text = std::str::from_utf8(v);
    match (logical, text) {
        (L::Bool, Ok(t)) => sql.push_str(if t == "true" { "1" } else { "0" }),
        (L::Int | L::Decimal, Ok(t))
            if t.bytes()
                .all(|c| c.is_ascii_digit() || c == b'-' || c == b'.') =>
        {
            sql.push_str(t);
        }
        (L::Float32 | L::Float64, Ok(t)) => {
            if matches!(t, "NaN" | "Infinity" | "-Infinity") {
                return Err(format!("MySQL cannot store the float {t}"));
            }
            // In exponent form: a plain literal with a point is an exact DECIMAL to MySQL, which
            // overflows at 65 digits (1.7976931348623157e308, 5e-324). A 4-byte float goes as
            // its exact value: MariaDB refuses 3.4028235e38 as out of FLOAT's range.
            let value = match logical {
                L::Float32 => t.parse::<f32>().map(f64::from),
                _ => t.parse::<f64>(),
            };
            match value {
                Ok(f) => {
                    let _ = write!(sql, "{f:e}");
                }
                Err(_) => return Err(format!("{t:?} is not a float")),
            }
        }
        (L::Timestamp, Ok(t)) => {
            sql.push_str(&quote::literal(Engine::Mysql, &t.replacen('T', " ", 1)))
        }
        (L::TimestampTz, Ok(t)) => {
            let t = t.strip_suffix('Z').unwrap_or(t).replacen('T', " ", 1);
            sql.push_str(&quote::literal(Engine::Mysql, &t));
        }
        (L::Bytes, _) | (_, Err(_)) => {
            sql.push_str("X'");
            sql.push_str(&hex::encode_upper(v));
            sql.push('\'');
        }
        (_, Ok(t)) => sql.push_str(&quote::literal(Engine::Mysql, t)),
    }
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
    }
}
