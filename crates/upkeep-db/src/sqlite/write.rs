//! Writing canonical rows into SQLite with one prepared INSERT per batch, in a transaction.

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Connection;
use upkeep_core::{values, Batch, Engine, LogicalType, Table};

use super::map_err;
use crate::quote;
use crate::{DbError, Target};

pub(crate) fn write_batch(
    conn: &Connection,
    target: &Target,
    table: &Table,
    batch: &Batch,
) -> Result<u64, DbError> {
    let path = target.sqlite_path().expect("a SQLite target has a path");
    let context = format!("writing table {}", table.name);
    // Generated columns are computed by SQLite: their values are read, never written.
    let cols: Vec<&str> = table.written_columns().map(|c| c.name.as_str()).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote::table(Engine::Sqlite, &table.name),
        quote::ident_list(Engine::Sqlite, &cols),
        (1..=cols.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| map_err(e, path, &context))?;
    {
        let mut stmt = tx
            .prepare_cached(&sql)
            .map_err(|e| map_err(e, path, &context))?;
        let mut params: Vec<ToSqlOutput<'_>> = Vec::with_capacity(cols.len());
        for row in batch.rows() {
            params.clear();
            for (i, v) in values(row).enumerate() {
                let v = v.map_err(|e| {
                    DbError::query(target.display(), context.clone(), e.to_string())
                })?;
                if table.columns.get(i).is_some_and(|c| c.generated.is_some()) {
                    continue;
                }
                let logical = table
                    .columns
                    .get(i)
                    .map_or(LogicalType::Other, |c| c.logical);
                params.push(to_sqlite(logical, v));
            }
            stmt.execute(rusqlite::params_from_iter(params.iter()))
                .map_err(|e| map_err(e, path, &context))?;
        }
    }
    tx.commit().map_err(|e| map_err(e, path, &context))?;
    Ok(u64::try_from(batch.len()).unwrap_or(u64::MAX))
}

/// One canonical value as the SQLite value that reads back to the same canonical text,
/// borrowing the batch's bytes where SQLite stores them as they are.
fn to_sqlite(logical: LogicalType, value: Option<&[u8]>) -> ToSqlOutput<'_> {
    use LogicalType as L;
    let Some(v) = value else {
        return ToSqlOutput::Borrowed(ValueRef::Null);
    };
    let Ok(t) = std::str::from_utf8(v) else {
        return ToSqlOutput::Borrowed(ValueRef::Blob(v));
    };
    let text = ToSqlOutput::Borrowed(ValueRef::Text(v));
    match logical {
        L::Bool => ToSqlOutput::Owned(Value::Integer(i64::from(t == "true"))),
        L::Int => t
            .parse()
            .map_or(text, |i| ToSqlOutput::Owned(Value::Integer(i))),
        L::Float32 | L::Float64 => match t {
            "Infinity" => ToSqlOutput::Owned(Value::Real(f64::INFINITY)),
            "-Infinity" => ToSqlOutput::Owned(Value::Real(f64::NEG_INFINITY)),
            // SQLite turns a NaN REAL into NULL; the text reads back as NaN by the `other` rule.
            "NaN" => text,
            _ => t
                .parse()
                .map_or(text, |f| ToSqlOutput::Owned(Value::Real(f))),
        },
        L::Bytes => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
        L::Timestamp => ToSqlOutput::Owned(Value::Text(t.replacen('T', " ", 1))),
        _ => text,
    }
}
