//! Reading a MySQL/MariaDB table chunk through the text protocol (it streams row by row and
//! sends values as the server prints them, which is what the digest spec's `other` rule names).

use futures_util::TryStreamExt;
use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::{Executor, Row};
use upkeep_core::{canonical, Engine, LogicalType, Table};

use super::err;
use crate::quote;
use crate::scan::ChunkOut;
use crate::{DbError, Target};

/// A column's raw bytes as text (lossy for invalid UTF-8); for catalog reads.
pub(crate) fn text(row: &MySqlRow, i: usize) -> Option<String> {
    let raw: Option<&[u8]> = row.try_get_unchecked(i).ok().flatten();
    raw.map(|b| String::from_utf8_lossy(b).into_owned())
}

pub(crate) fn select_list(table: &Table) -> Vec<String> {
    table
        .columns
        .iter()
        .map(|c| {
            let col = quote::ident(Engine::Mysql, &c.name);
            match c.logical {
                // The text protocol prints FLOAT with 6 digits: read the exact value as a double.
                LogicalType::Float32 | LogicalType::Float64 => format!("CAST({col} AS DOUBLE)"),
                _ => col,
            }
        })
        .collect()
}

pub(crate) async fn read_chunk(
    conn: &mut MySqlConnection,
    target: &Target,
    table: &Table,
    tail: &str,
    out: &mut ChunkOut,
) -> Result<(), DbError> {
    let sql = format!(
        "SELECT {} FROM {}{}",
        select_list(table).join(", "),
        quote::table(Engine::Mysql, &table.name),
        tail
    );
    let context = format!("reading table {}", table.name);
    let logicals: Vec<LogicalType> = table.columns.iter().map(|c| c.logical).collect();
    let mut rows = conn.fetch(sql.as_str());
    while let Some(row) = rows.try_next().await.map_err(err(target, &context))? {
        let b = out.builder();
        let mut irregular = 0;
        for (i, &logical) in logicals.iter().enumerate() {
            let raw: Option<&[u8]> = row.try_get_unchecked(i).map_err(err(target, &context))?;
            match raw {
                None => b.push_null(),
                Some(raw) => {
                    let (mark, buf) = b.begin_value();
                    if canonical::write_from_text(logical, raw, buf).is_err() {
                        // Zero dates, times beyond 24 h and the like: the spec's `other` rule,
                        // the value as the server sent it.
                        buf.extend_from_slice(raw);
                        irregular += 1;
                    }
                    b.finish_value(mark);
                }
            }
        }
        out.row_done();
        out.note_irregular(irregular);
        out.flush_if_full().await?;
    }
    Ok(())
}
