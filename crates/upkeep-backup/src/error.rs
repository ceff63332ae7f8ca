//! Errors of the backup tools.

use upkeep_core::ErrorKind;
use upkeep_db::DbError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("repository {location}")]
    Io {
        location: String,
        source: std::io::Error,
    },
    #[error("{location} is not an upkeep repository (no valid config.json); give an empty or new folder to create one")]
    NotARepository { location: String },
    #[error("snapshot {id} not found in repository {location}")]
    SnapshotNotFound { id: String, location: String },
    #[error("snapshot {prefix} is ambiguous in repository {location}: it starts {matches}; give more of the id")]
    AmbiguousSnapshot {
        prefix: String,
        location: String,
        matches: String,
    },
    #[error("repository {location} is locked by {holder}: another backup or prune is running")]
    Locked { location: String, holder: String },
    #[error(
        "this run's lock {key} in repository {location} was removed by another run that judged it \
         stale: stopped without writing anything more; run again"
    )]
    LockLost { location: String, key: String },
    #[error(
        "repository {location} holds damaged snapshots ({ids}): prune cannot tell which chunks \
         they need; remove them first (upkeep forget --repo {location} {ids})"
    )]
    PruneBlocked { location: String, ids: String },
    #[error("repository is damaged: {what}")]
    Corrupt { what: String },
    #[error("no table in {target} matches the given --tables/--exclude patterns")]
    NoTables { target: String },
    #[error(
        "tables already hold rows in {target}: {tables}; pass --clean to drop and replace them"
    )]
    NotEmpty { target: String, tables: String },
    #[error("restored data differs from snapshot {snapshot} in {tables}")]
    Mismatch { snapshot: String, tables: String },
    #[error("{0}")]
    Usage(String),
    #[error(
        "table {table} in {target} has no column {column}, which snapshot {snapshot} holds: \
         restore its schema too (without --data-only), or add the column"
    )]
    MissingColumn {
        target: String,
        snapshot: String,
        table: String,
        column: String,
    },
    #[error(
        "a row read from table {table} is malformed at byte {offset}: this is a bug in upkeep's \
         reader; please report it with the table's definition"
    )]
    MalformedRow { table: String, offset: usize },
    #[error(
        "internal error: {0}; this is a bug in upkeep, please report it with the output of -v"
    )]
    Internal(String),
    #[error("creating {object}")]
    Creating {
        object: String,
        #[source]
        source: DbError,
    },
    #[error(
        "roles missing in {target}: {roles}; create them first, or restore with --no-owner \
         --no-privileges"
    )]
    MissingRoles { target: String, roles: String },
    #[error("cancelled")]
    Cancelled,
}

impl BackupError {
    pub(crate) fn io(location: impl std::fmt::Display, source: std::io::Error) -> Self {
        Self::Io {
            location: location.to_string(),
            source,
        }
    }

    /// The category that decides the exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Db(e) => e.kind(),
            Self::NotARepository { .. }
            | Self::SnapshotNotFound { .. }
            | Self::NoTables { .. }
            | Self::MissingColumn { .. }
            | Self::MissingRoles { .. } => ErrorKind::NotFound,
            Self::Creating { source, .. } => source.kind(),
            Self::NotEmpty { .. } | Self::Usage(_) | Self::AmbiguousSnapshot { .. } => {
                ErrorKind::Usage
            }
            Self::Cancelled => ErrorKind::Cancelled,
            Self::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                ErrorKind::Permission
            }
            _ => ErrorKind::Failure,
        }
    }

    /// Whether this is a cancellation, raised here or by the database layer.
    pub fn is_cancelled(&self) -> bool {
        self.kind() == ErrorKind::Cancelled
    }

    /// Whether the data itself did not check out (exit 3), as opposed to the work failing.
    pub fn is_mismatch(&self) -> bool {
        matches!(self, Self::Mismatch { .. } | Self::Corrupt { .. })
    }
}
