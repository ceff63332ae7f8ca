//! Progress events: libraries report, the CLI decides whether and how to show them.

use crate::TableName;

/// What a long-running tool reports as it goes.
#[derive(Clone, Debug)]
pub enum ProgressEvent {
    /// Work is planned: so many tables, about so many rows in all (an estimate).
    Planned { tables: usize, estimated_rows: u64 },
    /// Rows and encoded bytes done in a table.
    Rows {
        table: TableName,
        rows: u64,
        bytes: u64,
    },
    /// A table is finished.
    TableDone { table: TableName, rows: u64 },
}

/// Receives progress events. Must be cheap: it is called once per batch.
pub trait Progress: Send + Sync {
    fn event(&self, event: ProgressEvent);
}

/// Discards every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: ProgressEvent) {}
}
