//! `upkeep checksum`: each table's row count and content digest, read from one consistent
//! snapshot by parallel workers over key-range chunks.
//!
//! ```no_run
//! # async fn f() -> Result<(), upkeep_checksum::ChecksumError> {
//! use std::sync::Arc;
//! use upkeep_checksum::{run, ChecksumOptions};
//! let target = upkeep_db::Target::parse("sqlite://shop.db", None)?;
//! let report = run(ChecksumOptions::new(target), Arc::new(upkeep_core::NoProgress), Default::default()).await?;
//! for t in &report.tables {
//!     println!("{} {}", t.table, t.digest);
//! }
//! # Ok(()) }
//! ```

mod report;
mod run;

pub use report::{ChecksumReport, ChunkChecksum, TableChecksum};
pub use run::{run, ChecksumError, ChecksumOptions};
