//! Each engine's own DDL for a same-engine restore, read from the server inside the snapshot.

use serde::{Deserialize, Serialize};
use upkeep_core::Engine;

/// Native DDL statements, in the order they must run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeDdl {
    pub engine: Engine,
    /// Before the data: schemas, types, sequences, functions, tables with their primary keys.
    pub pre_data: Vec<String>,
    /// After the data: other constraints, indexes, sequence positions, views, triggers,
    /// comments.
    pub post_data: Vec<String>,
}

impl NativeDdl {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            pre_data: Vec::new(),
            post_data: Vec::new(),
        }
    }
}
