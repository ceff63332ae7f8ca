//! The snapshot manifest: a versioned JSON document written last, naming everything a restore
//! needs and every chunk it reads.

use serde::{Deserialize, Serialize};
use upkeep_core::{Digest, Engine, KeyRange, Schema, SchemaObject, TableName};
use upkeep_db::NativeDdl;

use crate::BackupError;

pub const MANIFEST_FORMAT: &str = "upkeep-snapshot";
/// Version 2 lists schema objects; version 1 manifests (native DDL) are still read.
pub const MANIFEST_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub tool_version: String,
    pub engine: Engine,
    pub server_version: String,
    /// The redacted source URL.
    pub source: String,
    pub started_at: String,
    pub finished_at: String,
    /// What made the read consistent (exported snapshot, binlog position, read transaction).
    pub consistency: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The content digest version used for `tables[].digest`.
    pub digest_version: u32,
    /// When the oldest rows of this snapshot were read: the start of the last backup in its
    /// chain of parents that took nothing from a parent. A next backup reads everything
    /// once this is older than its `--full-every`. Absent in older manifests, whose next
    /// backup reads everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_read_at: Option<String>,
    /// PostgreSQL: the source's WAL position at the snapshot, in bytes; a next backup whose
    /// source is behind it does not take ranges from this snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_position: Option<u64>,
    /// The neutral schema (for restores into another engine and for reports).
    pub schema: Schema,
    /// The source's schema objects in an order that creates them, each with its
    /// definition: what a same-engine restore creates and its schema proof compares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<SchemaObject>,
    /// Snapshots made before objects were listed: the source engine's own DDL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_ddl: Option<NativeDdl>,
    pub tables: Vec<TableEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: TableName,
    pub rows: u64,
    pub digest: Digest,
    /// Uncompressed bytes of the table's rows.
    pub bytes: u64,
    pub chunks: Vec<ChunkRef>,
    /// The key ranges the table was read in, in order, each with its change fingerprint:
    /// the next backup reads the same ranges and skips those whose fingerprint is unchanged.
    /// Empty where the engine has no fingerprints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
    /// A PostgreSQL partitioned table that was not read: its rows are these partitions'
    /// (entries of the same manifest), its digest the sum of theirs, and it has no chunks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<TableName>,
}

/// One key range of a table as a backup read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub range: KeyRange,
    pub fingerprint: String,
    /// How many of the table's chunks, following the previous segment's, hold its rows.
    pub chunks: usize,
    pub digest: Digest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: String,
    pub rows: u64,
    pub bytes: u64,
}

impl Manifest {
    /// Checks what a manifest must satisfy to be trusted: its format, its id, that every
    /// table's chunk row counts add up to its row count, and a partitioned table's digest to
    /// its partitions'.
    pub fn check(&self, expected_id: &str) -> Result<(), BackupError> {
        let bad = |why: String| BackupError::Corrupt {
            what: format!("manifest of snapshot {expected_id}: {why}"),
        };
        if self.format != MANIFEST_FORMAT {
            return Err(bad(format!("unknown format {:?}", self.format)));
        }
        if !(1..=MANIFEST_VERSION).contains(&self.version)
            || self.digest_version != upkeep_core::DIGEST_VERSION
        {
            return Err(bad(format!(
                "version {} / digest v{} is not readable",
                self.version, self.digest_version
            )));
        }
        if self.id != expected_id {
            return Err(bad(format!("it names itself {}", self.id)));
        }
        for t in &self.tables {
            if !t.partitions.is_empty() {
                let mut digest = Digest::default();
                for p in &t.partitions {
                    let entry = self.tables.iter().find(|e| &e.name == p).ok_or_else(|| {
                        bad(format!(
                            "table {} names partition {p}, which it does not hold",
                            t.name
                        ))
                    })?;
                    digest.merge(&entry.digest);
                }
                if !t.chunks.is_empty()
                    || t.bytes != 0
                    || digest != t.digest
                    || t.rows != digest.rows()
                {
                    return Err(bad(format!(
                        "table {} does not add up to its partitions ({digest})",
                        t.name
                    )));
                }
                continue;
            }
            let rows: u64 = t.chunks.iter().map(|c| c.rows).sum();
            let bytes: u64 = t.chunks.iter().map(|c| c.bytes).sum();
            if rows != t.rows || rows != t.digest.rows() || bytes != t.bytes {
                return Err(bad(format!(
                    "table {} lists {rows} rows in its chunks but {} in its digest",
                    t.name, t.digest
                )));
            }
            if !t.segments.is_empty() {
                let chunks: usize = t.segments.iter().map(|s| s.chunks).sum();
                let mut digest = Digest::default();
                for s in &t.segments {
                    digest.merge(&s.digest);
                }
                // The next backup builds its digests from these: they must add up.
                if chunks != t.chunks.len() || digest != t.digest {
                    return Err(bad(format!(
                        "table {} has segments that do not cover its chunks",
                        t.name
                    )));
                }
            }
            if t.chunks
                .iter()
                .any(|c| c.id.len() != 64 || !c.id.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(bad(format!("table {} names a malformed chunk id", t.name)));
            }
        }
        Ok(())
    }
}
