//! Writing canonical rows into PostgreSQL with `COPY … FROM STDIN`: in binary format when
//! every column's type has a binary encoding (`copy_encode`), else in text format.

use sqlx::postgres::PgConnection;
use upkeep_core::{values, Batch, Engine, LogicalType, Table};

use super::copy_encode::{self, PgEncode};
use super::err;
use crate::quote;
use crate::{DbError, Target};

/// How a table's rows are sent.
enum Format {
    Binary(Vec<PgEncode>),
    Text,
}

impl Format {
    fn of(table: &Table) -> Self {
        copy_encode::binary_plan(table).map_or(Self::Text, Self::Binary)
    }

    fn copy_sql(&self, table: &Table, freeze: bool) -> String {
        let freeze = if freeze { ", FREEZE" } else { "" };
        match self {
            Self::Binary(_) => format!("{} (FORMAT binary{freeze})", copy_sql(table)),
            Self::Text if freeze.is_empty() => copy_sql(table),
            Self::Text => format!("{} (FREEZE)", copy_sql(table)),
        }
    }

    fn header(&self, buf: &mut Vec<u8>) {
        if let Self::Binary(_) = self {
            buf.extend_from_slice(copy_encode::HEADER);
        }
    }

    fn trailer(&self) -> &'static [u8] {
        match self {
            Self::Binary(_) => copy_encode::TRAILER,
            Self::Text => b"",
        }
    }

    fn encode(
        &self,
        target: &Target,
        table: &Table,
        batch: &Batch,
        context: &str,
        buf: &mut Vec<u8>,
    ) -> Result<(), DbError> {
        match self {
            Self::Binary(plan) => encode_binary(target, table, plan, batch, context, buf),
            Self::Text => encode_text(target, table, batch, context, buf),
        }
    }
}

fn copy_sql(table: &Table) -> String {
    let cols = table.written_columns().map(|c| c.name.as_str());
    format!(
        "COPY {} ({}) FROM STDIN",
        quote::table(Engine::Postgres, &table.name),
        quote::ident_list(Engine::Postgres, cols)
    )
}

/// A batch as binary COPY tuples.
fn encode_binary(
    target: &Target,
    table: &Table,
    plan: &[PgEncode],
    batch: &Batch,
    context: &str,
    buf: &mut Vec<u8>,
) -> Result<(), DbError> {
    buf.reserve(batch.byte_len() + batch.len() * (2 + 4 * plan.len()));
    let fields = i16::try_from(plan.len())
        .map_err(|_| DbError::query(target.display(), context, "over 32767 columns"))?;
    for row in batch.rows() {
        buf.extend_from_slice(&fields.to_be_bytes());
        let mut next = plan.iter();
        for (i, value) in values(row).enumerate() {
            let value =
                value.map_err(|e| DbError::query(target.display(), context, e.to_string()))?;
            let too_many = || {
                DbError::query(
                    target.display(),
                    context,
                    "a row has more values than columns",
                )
            };
            let column = table.columns.get(i).ok_or_else(too_many)?;
            if column.generated.is_some() {
                continue;
            }
            let enc = next.next().ok_or_else(too_many)?;
            copy_encode::write_field(*enc, value, buf).map_err(|m| {
                DbError::query(
                    target.display(),
                    context,
                    format!("column {:?}: {m}", column.name),
                )
            })?;
        }
    }
    Ok(())
}

/// A batch as COPY text lines.
fn encode_text(
    target: &Target,
    table: &Table,
    batch: &Batch,
    context: &str,
    buf: &mut Vec<u8>,
) -> Result<(), DbError> {
    buf.reserve(batch.byte_len() + batch.len() * 8);
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
            write_copy_text(logical, value, buf);
        }
        buf.push(b'\n');
    }
    Ok(())
}

/// Loads a batch into `table` (whose columns are in the batch's order).
pub(crate) async fn write_batch(
    conn: &mut PgConnection,
    target: &Target,
    table: &Table,
    batch: &Batch,
) -> Result<u64, DbError> {
    copy_in(conn, target, table, Source::One(Some(batch)), false).await
}

/// Loads every batch the channel brings into `table` through one COPY, so the server parses
/// while the next batch is prepared.
pub(crate) async fn write_stream(
    conn: &mut PgConnection,
    target: &Target,
    table: &Table,
    batches: &mut tokio::sync::mpsc::Receiver<Batch>,
) -> Result<u64, DbError> {
    copy_in(conn, target, table, Source::Channel(batches), false).await
}

/// Loads every batch the channel brings into the empty `table` in one transaction that
/// truncates it first, through one `COPY … FREEZE`: the rows are written frozen and their
/// pages all-visible, so the index builds and reads that follow check no row's visibility
/// and set no hint bit (which would dirty, and write again, every page), and no vacuum has
/// to freeze them later.
pub(crate) async fn write_stream_frozen(
    conn: &mut PgConnection,
    target: &Target,
    table: &Table,
    batches: &mut tokio::sync::mpsc::Receiver<Batch>,
) -> Result<u64, DbError> {
    use sqlx::Executor;
    let context = format!("writing table {}", table.name);
    conn.execute("BEGIN").await.map_err(err(target, &context))?;
    let truncate = format!(
        "TRUNCATE ONLY {}",
        quote::table(Engine::Postgres, &table.name)
    );
    let loaded = match conn.execute(truncate.as_str()).await {
        Ok(_) => copy_in(conn, target, table, Source::Channel(batches), true).await,
        Err(e) => Err(err(target, &context)(e)),
    };
    match loaded {
        Ok(rows) => {
            conn.execute("COMMIT")
                .await
                .map_err(err(target, &context))?;
            Ok(rows)
        }
        Err(e) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Where one COPY's batches come from.
enum Source<'a> {
    One(Option<&'a Batch>),
    Channel(&'a mut tokio::sync::mpsc::Receiver<Batch>),
}

/// One COPY of every batch of `source`.
async fn copy_in(
    conn: &mut PgConnection,
    target: &Target,
    table: &Table,
    mut source: Source<'_>,
    freeze: bool,
) -> Result<u64, DbError> {
    let context = format!("writing table {}", table.name);
    let format = Format::of(table);
    let mut copy = conn
        .copy_in_raw(&format.copy_sql(table, freeze))
        .await
        .map_err(err(target, &context))?;
    let mut buf = Vec::new();
    format.header(&mut buf);
    loop {
        let received;
        let batch = match &mut source {
            Source::One(one) => one.take(),
            Source::Channel(rx) => {
                received = rx.recv().await;
                received.as_ref()
            }
        };
        let Some(batch) = batch else { break };
        if let Err(e) = format.encode(target, table, batch, &context, &mut buf) {
            let _ = copy.abort("upkeep: bad row").await;
            return Err(e);
        }
        if let Err(e) = copy.send(std::mem::take(&mut buf)).await {
            let _ = copy.abort("upkeep: send failed").await;
            return Err(err(target, &context)(e));
        }
    }
    buf.extend_from_slice(format.trailer());
    if let Err(e) = copy.send(buf).await {
        let _ = copy.abort("upkeep: send failed").await;
        return Err(err(target, &context)(e));
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
        let start = buf.len();
        buf.resize(start + 2 * v.len(), 0);
        hex::encode_to_slice(v, &mut buf[start..]).expect("the buffer holds two digits a byte");
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
