//! Writing canonical rows into PostgreSQL with `COPY … FROM STDIN` (text format).

use sqlx::postgres::PgConnection;
use upkeep_core::{values, Batch, Engine, LogicalType, Table};

use super::err;
use crate::quote;
use crate::{DbError, Target};

fn copy_sql(table: &Table) -> String {
    // Generated columns are computed by the server: their values are read, never written.
    let cols: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.generated.is_none())
        .map(|c| c.name.clone())
        .collect();
    format!(
        "COPY {} ({}) FROM STDIN",
        quote::table(Engine::Postgres, &table.name),
        quote::ident_list(Engine::Postgres, &cols)
    )
}

/// A batch as COPY text lines.
fn encode(
    target: &Target,
    table: &Table,
    batch: &Batch,
    context: &str,
) -> Result<Vec<u8>, DbError> {
    let mut buf = Vec::with_capacity(batch.byte_len() + batch.len() * 8);
    for row in batch.rows() {
        let mut first = true;
        for (i, value) in values(row).enumerate() {
            let value =
                value.map_err(|e| DbError::query(target.display(), context, e.to_string()))?;
            if table.columns.get(i).is_some_and(|c| c.generated.is_some()) {
                continue;
            }
            if !first {
                buf.push(b'\t');
            }
            first = false;
            let logical = table
                .columns
                .get(i)
                .map_or(LogicalType::Other, |c| c.logical);
            write_copy_text(logical, value, &mut buf);
        }
        buf.push(b'\n');
    }
    Ok(buf)
}

/// Loads a batch into `table` (whose columns are in the batch's order).
pub(crate) async fn write_batch(
    conn: &mut PgConnection,
    target: &Target,
    table: &Table,
    batch: &Batch,
) -> Result<u64, DbError> {
    let context = format!("writing table {}", table.name);
    let buf = encode(target, table, batch, &context)?;
    let mut copy = conn
        .copy_in_raw(&copy_sql(table))
        .await
        .map_err(err(target, &context))?;
    if let Err(e) = copy.send(buf).await {
        let _ = copy.abort("upkeep: send failed").await;
        return Err(err(target, &context)(e));
    }
    copy.finish().await.map_err(err(target, &context))
}

/// Loads every batch the channel brings into `table` through one COPY, so the server parses
/// while the next batch is prepared.
pub(crate) async fn write_stream(
    conn: &mut PgConnection,
    target: &Target,
    table: &Table,
    batches: &mut tokio::sync::mpsc::Receiver<Batch>,
) -> Result<u64, DbError> {
    let context = format!("writing table {}", table.name);
    let mut copy = conn
        .copy_in_raw(&copy_sql(table))
        .await
        .map_err(err(target, &context))?;
    while let Some(batch) = batches.recv().await {
        let buf = match encode(target, table, &batch, &context) {
            Ok(buf) => buf,
            Err(e) => {
                let _ = copy.abort("upkeep: bad row").await;
                return Err(e);
            }
        };
        if let Err(e) = copy.send(buf).await {
            let _ = copy.abort("upkeep: send failed").await;
            return Err(err(target, &context)(e));
        }
    }
    copy.finish().await.map_err(err(target, &context))
}

/// One value in COPY's text format.
fn write_copy_text(logical: LogicalType, value: Option<&[u8]>, buf: &mut Vec<u8>) {
    let Some(v) = value else {
        buf.extend_from_slice(b"\\N");
        return;
    };
    if logical == LogicalType::Bytes {
        buf.extend_from_slice(b"\\\\x");
        for b in v {
            buf.extend_from_slice(format!("{b:02x}").as_bytes());
        }
        return;
    }
    for &c in v {
        match c {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            c => buf.push(c),
        }
    }
}
