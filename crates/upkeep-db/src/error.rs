//! Errors of the engine adapters. Every message names its (redacted) target or object.

use std::path::PathBuf;

pub use upkeep_core::ErrorKind;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error(
        "unsupported connection URL {target}: use postgres://, postgresql://, mysql://, mariadb://, \
         sqlite://PATH or a path ending in .db, .sqlite or .sqlite3"
    )]
    UnknownScheme { target: String },
    #[error("invalid connection URL {target}: {reason}")]
    InvalidUrl { target: String, reason: String },
    #[error("cannot reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error(
        "authentication failed for {target}: check the user and password (URL, UPKEEP_PASSWORD \
         or --password-file)"
    )]
    AuthFailed { target: String },
    #[error("database {database:?} does not exist on {target}")]
    DatabaseNotFound { database: String, target: String },
    #[error("table {table} not found in {target}")]
    TableNotFound { table: String, target: String },
    #[error("permission denied on {target}: {detail}")]
    PermissionDenied { target: String, detail: String },
    #[error("SQLite file {} does not exist", path.display())]
    FileNotFound { path: PathBuf },
    #[error("{} is not a SQLite database", path.display())]
    NotADatabase { path: PathBuf },
    #[error("lost the connection to {target} while {context}: {reason}")]
    ConnectionLost {
        target: String,
        context: String,
        reason: String,
    },
    #[error("{context} failed on {target}: {message}")]
    Query {
        target: String,
        context: String,
        message: String,
    },
    #[error("cannot read password file {}", path.display())]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "a row of table {table} needs {bytes} bytes in one packet, more than max_allowed_packet \
         ({limit}) on {target}: raise it on the server (SET GLOBAL max_allowed_packet = 1073741824) \
         and run again"
    )]
    PacketTooLarge {
        target: String,
        table: String,
        bytes: u64,
        limit: u64,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("cancelled")]
    Cancelled,
}

impl DbError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownScheme { .. } | Self::InvalidUrl { .. } | Self::Unsupported(_) => {
                ErrorKind::Usage
            }
            Self::Unreachable { .. } | Self::AuthFailed { .. } => ErrorKind::Connect,
            Self::DatabaseNotFound { .. }
            | Self::TableNotFound { .. }
            | Self::FileNotFound { .. }
            | Self::NotADatabase { .. }
            | Self::PasswordFile { .. } => ErrorKind::NotFound,
            Self::PermissionDenied { .. } => ErrorKind::Permission,
            Self::ConnectionLost { .. } | Self::Query { .. } | Self::PacketTooLarge { .. } => {
                ErrorKind::Failure
            }
            Self::Cancelled => ErrorKind::Cancelled,
        }
    }

    pub(crate) fn query(
        target: &str,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Query {
            target: target.to_owned(),
            context: context.into(),
            message: message.into(),
        }
    }

    /// Classifies a sqlx error. `database` is the database the URL names, for "does not exist".
    pub(crate) fn from_sqlx(
        err: sqlx::Error,
        target: &str,
        database: Option<&str>,
        context: &str,
    ) -> Self {
        let target_s = target.to_owned();
        match err {
            sqlx::Error::Io(e) => {
                if context == "connecting" {
                    Self::Unreachable {
                        target: target_s,
                        reason: e.to_string(),
                    }
                } else {
                    Self::ConnectionLost {
                        target: target_s,
                        context: context.into(),
                        reason: e.to_string(),
                    }
                }
            }
            sqlx::Error::Tls(e) => Self::Unreachable {
                target: target_s,
                reason: format!("TLS: {e}"),
            },
            sqlx::Error::Configuration(e) => Self::InvalidUrl {
                target: target_s,
                reason: e.to_string(),
            },
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let number = db
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .map(sqlx::mysql::MySqlDatabaseError::number);
                let message = db.message().to_owned();
                let db_name = database.unwrap_or("").to_owned();
                match (code.as_str(), number) {
                    ("28P01" | "28000", None) | (_, Some(1045 | 1698)) => {
                        Self::AuthFailed { target: target_s }
                    }
                    ("3D000", None) | (_, Some(1049)) => Self::DatabaseNotFound {
                        database: db_name,
                        target: target_s,
                    },
                    ("42501", None) | (_, Some(1044 | 1142 | 1143 | 1227)) => {
                        Self::PermissionDenied {
                            target: target_s,
                            detail: message,
                        }
                    }
                    ("57P01" | "57P02" | "57P03", None) | (_, Some(1053 | 2006 | 2013)) => {
                        Self::ConnectionLost {
                            target: target_s,
                            context: context.into(),
                            reason: message,
                        }
                    }
                    _ => Self::Query {
                        target: target_s,
                        context: context.into(),
                        message,
                    },
                }
            }
            sqlx::Error::Protocol(m) if context != "connecting" => Self::ConnectionLost {
                target: target_s,
                context: context.into(),
                reason: m,
            },
            other => Self::Query {
                target: target_s,
                context: context.into(),
                message: other.to_string(),
            },
        }
    }
}

/// Maps a sqlx error on `target` while doing `context`. Allocates nothing until it is called:
/// it sits on per-row paths.
pub(crate) fn sqlx_err<'a>(
    target: &'a crate::Target,
    context: &'a str,
) -> impl Fn(sqlx::Error) -> DbError + 'a {
    move |e| DbError::from_sqlx(e, target.display(), target.database(), context)
}
