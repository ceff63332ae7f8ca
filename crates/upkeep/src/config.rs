//! `upkeep.toml`: named databases and repositories, so that a crontab line is short and holds
//! no password.
//!
//! ```toml
//! [databases.shop]
//! url = "postgres://backup@db1/shop"
//! password_file = "/etc/upkeep/shop.password"
//!
//! [repositories.nightly]
//! path = "/var/backups/shop"
//!
//! [backup]
//! full_every = "7d"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseEntry>,
    #[serde(default)]
    pub repositories: BTreeMap<String, RepositoryEntry>,
    #[serde(default)]
    pub backup: BackupSection,
}

/// `[backup]`: defaults of `upkeep backup` that the command line overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// `--full-every`, as `7d`, `36h`…
    pub full_every: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseEntry {
    pub url: String,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryEntry {
    pub path: PathBuf,
}

/// Where the configuration is read from: `--config`, `UPKEEP_CONFIG`, `./upkeep.toml`,
/// `/etc/upkeep/upkeep.toml`, the first that exists. An explicit path must exist.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
    let candidates: Vec<PathBuf> = match explicit
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("UPKEEP_CONFIG").map(PathBuf::from))
    {
        Some(p) => {
            if !p.exists() {
                anyhow::bail!("configuration file {} does not exist", p.display());
            }
            vec![p]
        }
        None => vec![
            PathBuf::from("upkeep.toml"),
            PathBuf::from("/etc/upkeep/upkeep.toml"),
        ],
    };
    for path in candidates {
        if path.exists() {
            crate::secrets::warn_if_readable_by_others(&path, "configuration file");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            return toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a valid upkeep.toml: {}",
                    path.display(),
                    e.message()
                )
            });
        }
    }
    Ok(Config::default())
}

impl Config {
    /// A database URL argument: a name from `[databases]`, else the URL itself. Returns the
    /// URL and the entry's password file.
    pub fn database(&self, arg: &str) -> (String, Option<PathBuf>) {
        match self.databases.get(arg) {
            Some(d) => (d.url.clone(), d.password_file.clone()),
            None => (arg.to_owned(), None),
        }
    }

    /// A repository argument: a name from `[repositories]`, else a path.
    pub fn repository(&self, arg: &Path) -> PathBuf {
        arg.to_str()
            .and_then(|name| self.repositories.get(name))
            .map_or_else(|| arg.to_owned(), |r| r.path.clone())
    }
}
