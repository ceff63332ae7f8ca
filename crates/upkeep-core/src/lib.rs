//! The engine-neutral core of upkeep.
//!
//! - [`Schema`], [`Table`], [`Column`]: the schema model every engine adapter introspects into.
//! - [`LogicalType`]: the meaning of a column's values, which decides their canonical text.
//! - [`canonical`]: canonical text per logical type; [`Batch`]/[`BatchBuilder`]: rows in the
//!   canonical encoding that the content digest hashes.
//! - [`Digest`]: the content digest, version 1 (`docs/content-digest.md`).
//!
//! The core knows no concrete database: it never opens a connection.
//!
//! ```
//! use upkeep_core::{BatchBuilder, Digest};
//! let mut rows = BatchBuilder::default();
//! rows.push_value(b"1");
//! rows.push_null();
//! rows.end_row();
//! let mut digest = Digest::default();
//! rows.take().rows().for_each(|r| digest.add_row(r));
//! assert_eq!(digest.rows(), 1);
//! ```

mod batch;
pub mod canonical;
mod cursor;
mod digest;
mod error_kind;
mod filter;
mod logical;
mod objects;
mod progress;
mod redact;
mod schema;

pub use batch::{
    canonicalize_json, stored_row_hash, values, Batch, BatchBuilder, MalformedRow, ValueMark,
    ValueRef, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS,
};
pub use cursor::ByteCursor;
pub use digest::{row_hash, Digest, ParseDigestError, DIGEST_VERSION};
pub use error_kind::ErrorKind;
pub use filter::{TableFilter, Unselected};
pub use logical::LogicalType;
pub use objects::{
    creation_sql, prove, same_definition, select_objects, with_needs, Attribute, Attributes,
    ObjectCheck, ObjectKey, ObjectKind, ObjectStatus, Phase, SchemaObject, Selection,
};
pub use progress::{NoProgress, Progress, ProgressEvent};
pub use redact::{encode_url_userinfo, redact_url, url_userinfo, UrlUserinfo};
pub use schema::{
    Check, Column, Engine, ForeignKey, Identity, Index, Key, KeyRange, Schema, Sequence, Table,
    TableKind, TableName, View,
};
