//! Integration tests of `upkeep checksum` on real PostgreSQL, MariaDB and SQLite databases.

mod chinook;
mod chunks;
mod errors;
mod kitchen_sink;

use std::sync::Arc;

use upkeep_checksum::{ChecksumOptions, ChecksumReport};
use upkeep_core::NoProgress;
use upkeep_db::Target;

pub(crate) async fn checksum(
    target: &Target,
    configure: impl FnOnce(&mut ChecksumOptions),
) -> ChecksumReport {
    let mut options = ChecksumOptions::new(target.clone());
    configure(&mut options);
    upkeep_checksum::run(options, Arc::new(NoProgress), Default::default())
        .await
        .unwrap_or_else(|e| panic!("checksum of {target} failed: {e}"))
}
