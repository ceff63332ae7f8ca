//! `upkeep generate`: fills a realistic shop schema (customers, orders, order lines, documents
//! with text and blobs) with a deterministic data set of any size, in any engine, for tests
//! and benchmarks. The same `--rows` and `--seed` give the same rows (and so the same
//! content digests) in every engine and whatever the number of jobs.
//!
//! ```no_run
//! # async fn f() -> Result<(), upkeep_generate::GenerateError> {
//! let target = upkeep_db::Target::parse("sqlite://shop.db", None)?;
//! let report = upkeep_generate::run(upkeep_generate::GenerateOptions::new(target, 10_000)).await?;
//! assert_eq!(report.tables[2].rows, 10_000);
//! # Ok(()) }
//! ```

mod data;
mod run;

pub use data::shop_schema;
pub use run::{run, GenerateError, GenerateOptions, GenerateReport, GeneratedTable};
