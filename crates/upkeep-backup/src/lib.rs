//! Verified backups.
//!
//! - [`Repository`]: chunks stored once under the SHA-256 of their content, zstd-compressed,
//!   behind a [`Backend`] (a local folder today); snapshots are [`Manifest`]s written last.
//! - [`backup`]: one consistent snapshot read by parallel workers, cut into content-defined
//!   chunks on row boundaries, so unchanged data is not stored again.
//! - [`restore`]: schema, data by each engine's fast path, then the proof: every restored
//!   table's content digest must equal the manifest's.
//! - [`verify`]: structure, and with `read_data` every chunk rehashed and every table digest
//!   recomputed from the stored rows.
//!
//! ```no_run
//! # async fn f() -> Result<(), upkeep_backup::BackupError> {
//! use std::sync::Arc;
//! let target = upkeep_db::Target::parse("sqlite://shop.db", None)?;
//! let options = upkeep_backup::BackupOptions::new(target, "/var/backups/shop".into());
//! let report = upkeep_backup::backup(options, Arc::new(upkeep_core::NoProgress), Default::default()).await?;
//! println!("snapshot {}", report.snapshot);
//! # Ok(()) }
//! ```

mod backup;
mod chunker;
mod codec;
mod error;
mod forget;
mod manifest;
mod pipeline;
mod repo;
mod restore;
mod verify;

pub use backup::{backup, BackupOptions, BackupReport, TableBackup, DEFAULT_FULL_EVERY};
pub use error::BackupError;
pub use forget::{forget, DamagedSnapshot, ForgetOptions, ForgetReport};
pub use manifest::{ChunkRef, Manifest, TableEntry, MANIFEST_FORMAT, MANIFEST_VERSION};
pub use repo::{
    chunk_id, Backend, LocalBackend, LockInfo, RepoConfig, RepoLock, Repository, LOCK_REFRESH,
    LOCK_STALE_AFTER,
};
pub use restore::{restore, RestoreOptions, RestoreReport, SchemaMode, TableRestore};
pub use verify::{list_snapshots, verify, SnapshotSummary, VerifyOptions, VerifyReport};
