//! The sink that digests what a scan reads: used by `checksum`, and by every tool that proves
//! its work by reading back what it wrote.

use std::collections::HashMap;

use upkeep_core::{Batch, Digest};

use crate::{BatchSink, ScanTask};

/// Per-chunk digests of the batches one worker reads.
#[derive(Debug, Default)]
pub struct DigestSink {
    /// (table, chunk) → (digest, values read by the `other` rule).
    pub chunks: HashMap<(usize, usize), (Digest, u64)>,
    /// Canonical bytes hashed.
    pub bytes: u64,
}

impl BatchSink for DigestSink {
    type Error = std::convert::Infallible;

    fn batch(&mut self, task: &ScanTask, batch: Batch) -> Result<(), Self::Error> {
        self.bytes += u64::try_from(batch.byte_len()).unwrap_or(u64::MAX);
        let entry = self.chunks.entry((task.table, task.chunk)).or_default();
        batch.rows().for_each(|row| entry.0.add_row(row));
        Ok(())
    }

    fn chunk_done(
        &mut self,
        task: &ScanTask,
        _rows: u64,
        irregular: u64,
    ) -> Result<(), Self::Error> {
        self.chunks.entry((task.table, task.chunk)).or_default().1 += irregular;
        Ok(())
    }
}

impl DigestSink {
    /// Merges the sinks of all workers.
    pub fn merge(sinks: Vec<DigestSink>) -> DigestSink {
        let mut all = DigestSink::default();
        for sink in sinks {
            all.bytes += sink.bytes;
            for (k, (d, irregular)) in sink.chunks {
                let e = all.chunks.entry(k).or_default();
                e.0.merge(&d);
                e.1 += irregular;
            }
        }
        all
    }

    /// Each of the first `tables` tables' digest over its chunks, in one pass.
    pub fn table_digests(&self, tables: usize) -> Vec<Digest> {
        let mut out = vec![Digest::default(); tables];
        for ((t, _), (d, _)) in &self.chunks {
            if let Some(table) = out.get_mut(*t) {
                table.merge(d);
            }
        }
        out
    }
}

/// Digests `tables` of the target as they are now, reading them with the given models (whose
/// column order and logical types are those of the data's source, as the spec requires).
pub async fn digest_tables(
    target: &crate::Target,
    tables: Vec<upkeep_core::Table>,
    jobs: usize,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<Vec<Digest>, crate::DbError> {
    let mut snapshot = crate::Snapshot::open(target, jobs).await?;
    let tasks = match snapshot
        .plan_tasks(&tables, crate::PlanOptions::default())
        .await
    {
        Ok(p) => p.tasks,
        Err(e) => {
            snapshot.close().await;
            return Err(e);
        }
    };
    let n = tables.len();
    let sinks = (0..snapshot.workers())
        .map(|_| DigestSink::default())
        .collect();
    let result = crate::scan(
        &mut snapshot,
        std::sync::Arc::new(tables),
        tasks,
        sinks,
        crate::ScanOptions::default(),
        std::sync::Arc::new(upkeep_core::NoProgress),
        cancel,
    )
    .await;
    snapshot.close().await;
    let sinks = result.map_err(|e| match e {
        crate::ScanError::Db(e) => e,
        crate::ScanError::Sink(never) => match never {},
    })?;
    Ok(DigestSink::merge(sinks).table_digests(n))
}
