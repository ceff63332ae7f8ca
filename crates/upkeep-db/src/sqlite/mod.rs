//! SQLite: open, introspect, read by storage class, write with prepared INSERTs.

mod ddl;
mod introspect;
mod read;
mod write;

pub(crate) use ddl::schema_objects;
pub(crate) use introspect::introspect;
pub(crate) use read::read_chunk;
pub(crate) use write::write_batch;

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::{DbError, OpenMode, Target};

pub(crate) fn open(target: &Target, mode: OpenMode) -> Result<Connection, DbError> {
    let path = target.sqlite_path().expect("a SQLite target has a path");
    if mode != OpenMode::Create && !path.exists() {
        return Err(DbError::FileNotFound {
            path: path.to_owned(),
        });
    }
    let flags = match mode {
        OpenMode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        OpenMode::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        OpenMode::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| map_err(e, path, "opening"))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| map_err(e, path, "opening"))?;
    // Reading the schema is the cheapest way to learn whether the file is a database at all.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .map_err(|e| map_err(e, path, "opening"))?;
    Ok(conn)
}

pub(crate) fn map_err(e: rusqlite::Error, path: &Path, context: &str) -> DbError {
    use rusqlite::ErrorCode as C;
    if let rusqlite::Error::SqliteFailure(f, ref msg) = e {
        match f.code {
            C::NotADatabase => {
                return DbError::NotADatabase {
                    path: path.to_owned(),
                }
            }
            C::CannotOpen => {
                return DbError::Unreachable {
                    target: path.display().to_string(),
                    reason: msg.clone().unwrap_or_else(|| "cannot open the file".into()),
                }
            }
            C::PermissionDenied | C::ReadOnly => {
                return DbError::PermissionDenied {
                    target: path.display().to_string(),
                    detail: msg.clone().unwrap_or_else(|| f.to_string()),
                }
            }
            _ => {}
        }
    }
    DbError::query(&path.display().to_string(), context, e.to_string())
}

pub(crate) fn server_version() -> String {
    format!("SQLite {}", rusqlite::version())
}

pub(crate) fn execute_script(conn: &Connection, target: &Target, sql: &str) -> Result<(), DbError> {
    let path = target.sqlite_path().expect("a SQLite target has a path");
    conn.execute_batch(sql)
        .map_err(|e| map_err(e, path, "running SQL"))
}

/// Any value as text: numbers in their decimal form, text as it is, a blob read lossily as
/// UTF-8.
pub(crate) fn value_text(v: rusqlite::types::ValueRef<'_>) -> Option<String> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}
