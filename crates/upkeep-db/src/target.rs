//! Connection targets: which engine a URL names, its password, and its redacted form.

use std::path::{Path, PathBuf};

use upkeep_core::{redact_url, Engine};

use crate::DbError;

/// Whether a SQLite target may be created or only read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    ReadOnly,
    ReadWrite,
    /// Create the file when it is missing.
    Create,
}

/// A database to connect to. The password lives only in `url`; everything shown to a person
/// uses [`Target::display`], which is redacted.
#[derive(Clone)]
pub struct Target {
    engine: Engine,
    url: String,
    display: String,
    database: Option<String>,
    sqlite_path: Option<PathBuf>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("engine", &self.engine)
            .field("url", &self.display)
            .finish()
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl Target {
    /// Parses a connection URL. `password` (from `UPKEEP_PASSWORD` or a password file) is used
    /// when the URL carries none.
    pub fn parse(raw: &str, password: Option<&str>) -> Result<Self, DbError> {
        let raw = raw.trim();
        let display = redact_url(raw);
        let lower = raw.to_ascii_lowercase();
        if let Some(path) = lower
            .starts_with("sqlite:")
            .then(|| raw["sqlite:".len()..].trim_start_matches("//"))
        {
            let path = path.split('?').next().unwrap_or("");
            if path.is_empty() {
                return Err(DbError::InvalidUrl {
                    target: display,
                    reason: "no file path".into(),
                });
            }
            return Ok(Self::sqlite(Path::new(path)));
        }
        if !raw.contains("://") {
            let is_sqlite_file = [".db", ".sqlite", ".sqlite3"]
                .iter()
                .any(|ext| lower.ends_with(ext));
            if is_sqlite_file {
                return Ok(Self::sqlite(Path::new(raw)));
            }
            return Err(DbError::UnknownScheme { target: display });
        }
        // A password with an unencoded '@', '/' or '?' would otherwise be split off in part
        // and taken for the host or the database.
        let encoded = upkeep_core::encode_url_userinfo(raw);
        let raw = encoded.as_str();
        let mut url = url::Url::parse(raw).map_err(|e| DbError::InvalidUrl {
            target: display.clone(),
            reason: e.to_string(),
        })?;
        let engine = match url.scheme() {
            "postgres" | "postgresql" => Engine::Postgres,
            "mysql" | "mariadb" => Engine::Mysql,
            _ => return Err(DbError::UnknownScheme { target: display }),
        };
        if url.host_str().is_none_or(str::is_empty) && !url.query_pairs().any(|(k, _)| k == "host")
        {
            return Err(DbError::InvalidUrl {
                target: display,
                reason: "no host".into(),
            });
        }
        if engine == Engine::Mysql && url.scheme() == "mariadb" {
            // sqlx knows the scheme as mysql://; set_scheme refuses nothing between two special-less schemes.
            let rest = &raw[raw.find("://").unwrap_or(0)..];
            url = url::Url::parse(&format!("mysql{rest}")).map_err(|e| DbError::InvalidUrl {
                target: display.clone(),
                reason: e.to_string(),
            })?;
        }
        if let (None, Some(p)) = (url.password(), password) {
            if url.username().is_empty() {
                let _ = url.set_username(if engine == Engine::Mysql {
                    "root"
                } else {
                    "postgres"
                });
            }
            url.set_password(Some(p))
                .map_err(|()| DbError::InvalidUrl {
                    target: display.clone(),
                    reason: "cannot hold a password".into(),
                })?;
        }
        let database = url
            .path_segments()
            .and_then(|mut s| s.next().map(str::to_owned))
            .filter(|d| !d.is_empty())
            .map(|d| percent_decode(&d));
        Ok(Self {
            engine,
            url: url.to_string(),
            display,
            database,
            sqlite_path: None,
        })
    }

    /// A SQLite database file.
    pub fn sqlite(path: &Path) -> Self {
        let display = path.display().to_string();
        Self {
            engine: Engine::Sqlite,
            url: format!("sqlite://{display}"),
            display,
            database: None,
            sqlite_path: Some(path.to_owned()),
        }
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The URL with its password: pass it to a driver, never print it.
    pub fn secret_url(&self) -> &str {
        &self.url
    }

    /// The redacted URL or the SQLite path.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The database the URL names (PostgreSQL, MySQL).
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// The same server with another database (used to create and drop test databases).
    pub fn with_database(&self, database: &str) -> Result<Self, DbError> {
        let mut url = url::Url::parse(&self.url).map_err(|e| DbError::InvalidUrl {
            target: self.display.clone(),
            reason: e.to_string(),
        })?;
        url.set_path(&format!("/{}", percent_encode(database)));
        let mut display = url::Url::parse(&self.display).unwrap_or_else(|_| url.clone());
        display.set_path(&format!("/{}", percent_encode(database)));
        Ok(Self {
            engine: self.engine,
            url: url.to_string(),
            display: display.to_string(),
            database: Some(database.to_owned()),
            sqlite_path: None,
        })
    }
}

/// Reads a password file: its first line, without the line end.
pub fn read_password_file(path: &Path) -> Result<String, DbError> {
    let text = std::fs::read_to_string(path).map_err(|source| DbError::PasswordFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_paths() {
        assert_eq!(
            Target::parse("postgresql://u@h/db", None).unwrap().engine(),
            Engine::Postgres
        );
        let my = Target::parse("mariadb://u:pw@h:3307/shop", None).unwrap();
        assert_eq!(my.engine(), Engine::Mysql);
        assert!(my.secret_url().starts_with("mysql://u:pw@h:3307/shop"));
        assert_eq!(my.display(), "mariadb://u:***@h:3307/shop");
        assert_eq!(my.database(), Some("shop"));
        assert_eq!(
            Target::parse("/tmp/a.sqlite3", None).unwrap().engine(),
            Engine::Sqlite
        );
        assert_eq!(
            Target::parse("sqlite:///tmp/x", None)
                .unwrap()
                .sqlite_path(),
            Some(Path::new("/tmp/x"))
        );
        assert!(matches!(
            Target::parse("redis://h", None),
            Err(DbError::UnknownScheme { .. })
        ));
        assert!(matches!(
            Target::parse("/tmp/a.txt", None),
            Err(DbError::UnknownScheme { .. })
        ));
    }

    #[test]
    fn an_unencoded_password_is_taken_whole() {
        let t = Target::parse("postgres://app:p@ss/w0rd?x@db1:5433/shop", None).unwrap();
        assert_eq!(t.display(), "postgres://app:***@db1:5433/shop");
        assert_eq!(t.database(), Some("shop"));
        let url = url::Url::parse(t.secret_url()).unwrap();
        assert_eq!(url.host_str(), Some("db1"));
        assert_eq!(url.password(), Some("p%40ss%2Fw0rd%3Fx"));
    }

    #[test]
    fn password_from_elsewhere_never_shows() {
        let t = Target::parse("postgres://app@h/db", Some("s3cret")).unwrap();
        assert!(t.secret_url().contains("s3cret"));
        assert!(!t.display().contains("s3cret"));
        assert!(!format!("{t:?} {t}").contains("s3cret"));
        let other = t.with_database("x y").unwrap();
        assert_eq!(other.database(), Some("x y"));
        assert!(!other.display().contains("s3cret"));
        assert_eq!(percent_decode("a%20b"), "a b");
    }
}
