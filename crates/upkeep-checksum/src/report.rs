//! The checksum report: plain data the CLI renders and tests assert on.

use serde::{Deserialize, Serialize};
use upkeep_core::{Digest, Engine, KeyRange};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChecksumReport {
    /// The redacted URL or SQLite path.
    pub target: String,
    pub engine: Engine,
    pub server_version: String,
    /// What made the read consistent (snapshot id, binlog position, read transaction).
    pub consistency: String,
    pub jobs: usize,
    pub tables: Vec<TableChecksum>,
    pub total_rows: u64,
    /// Canonical bytes hashed.
    pub total_bytes: u64,
    pub duration_ms: u64,
    pub rows_per_sec: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableChecksum {
    /// `schema.table`, or `table` in the default namespace.
    pub table: String,
    pub rows: u64,
    pub digest: Digest,
    /// The columns the table was split on, if it has a usable key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<String>>,
    /// Values read by the digest's `other` rule because they did not fit their column's
    /// logical type (SQLite storage classes, MySQL zero dates): what a migration will change.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub irregular_values: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<Vec<ChunkChecksum>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkChecksum {
    pub range: KeyRange,
    pub rows: u64,
    pub digest: Digest,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
