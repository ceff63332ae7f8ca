//! The repository: chunks stored once under the SHA-256 of their content, zstd-compressed, and
//! snapshot manifests. Storage goes through [`Backend`], so another backend (object storage)
//! can be added without touching the tools.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::codec::Encoding;
use crate::manifest::Manifest;
use crate::BackupError;

/// Key-value storage of whole objects. `put` must be atomic: a reader sees the old object, the
/// new one, or none, never a part.
pub trait Backend: Send + Sync + std::fmt::Debug {
    fn put(&self, key: &str, data: &[u8]) -> std::io::Result<()>;
    /// Creates `key` only if it does not exist; false when it did.
    fn create_new(&self, key: &str, data: &[u8]) -> std::io::Result<bool>;
    fn get(&self, key: &str) -> std::io::Result<Vec<u8>>;
    fn exists(&self, key: &str) -> std::io::Result<bool>;
    /// Keys below `prefix` (a folder-like path ending in `/`).
    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>>;
    fn delete(&self, key: &str) -> std::io::Result<()>;
    fn size(&self, key: &str) -> std::io::Result<u64>;
    /// Where this backend stores, for messages.
    fn location(&self) -> String;
}

/// A repository on a local path. Objects are written to `tmp/` and renamed into place after
/// an fsync, and the folder is synced after the rename.
#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn write_tmp(&self, data: &[u8]) -> std::io::Result<PathBuf> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir)?;
        let name = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path)?;
        f.write_all(data)?;
        f.sync_all()?;
        Ok(path)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Backend for LocalBackend {
    fn put(&self, key: &str, data: &[u8]) -> std::io::Result<()> {
        let tmp = self.write_tmp(data)?;
        let dest = self.path(key);
        let parent = dest.parent().expect("keys have a folder");
        std::fs::create_dir_all(parent)?;
        if let Err(e) = std::fs::rename(&tmp, &dest) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(parent)
    }

    fn create_new(&self, key: &str, data: &[u8]) -> std::io::Result<bool> {
        let dest = self.path(key);
        std::fs::create_dir_all(dest.parent().expect("keys have a folder"))?;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
        {
            Ok(mut f) => {
                f.write_all(data)?;
                f.sync_all()?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn get(&self, key: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(key))
    }

    fn exists(&self, key: &str) -> std::io::Result<bool> {
        self.path(key).try_exists()
    }

    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        let base = self.path(prefix);
        if !base.exists() {
            return Ok(out);
        }
        let mut stack = vec![base];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn size(&self, key: &str) -> std::io::Result<u64> {
        Ok(std::fs::metadata(self.path(key))?.len())
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

/// Parameters fixed when a repository is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub zstd_level: i32,
    pub chunk_min_bytes: usize,
    pub chunk_target_bytes: usize,
    pub chunk_max_bytes: usize,
    /// How rows are laid out in a chunk before compression.
    pub chunk_encoding: String,
}

const FORMAT: &str = "upkeep-repository";
const CONFIG_KEY: &str = "config.json";

/// An open repository.
#[derive(Clone, Debug)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: RepoConfig,
    /// The layout of `config.chunk_encoding`.
    encoding: Encoding,
}

/// A chunk's id: the lowercase hex SHA-256 of its stored (uncompressed, compact) content.
pub fn chunk_id(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

fn chunk_key(id: &str) -> String {
    format!("chunks/{}/{id}", &id[..2])
}

impl Repository {
    /// Opens the repository at `path`, creating it when the path is missing or an empty folder.
    pub fn open_or_init(path: &Path, zstd_level: i32) -> Result<Self, BackupError> {
        let empty = !path.exists()
            || path
                .read_dir()
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
        if empty {
            std::fs::create_dir_all(path).map_err(|e| BackupError::io(path.display(), e))?;
            let config = RepoConfig {
                format: FORMAT.into(),
                version: 1,
                id: format!("{:032x}", rand::random::<u128>()),
                zstd_level,
                chunk_min_bytes: 256 << 10,
                chunk_target_bytes: 1 << 20,
                chunk_max_bytes: 4 << 20,
                chunk_encoding: Encoding::COLUMNS.into(),
            };
            let backend = LocalBackend::new(path);
            let json = serde_json::to_vec_pretty(&config).expect("the config serializes");
            backend
                .put(CONFIG_KEY, &json)
                .map_err(|e| BackupError::io(path.display(), e))?;
            return Ok(Self {
                backend: Arc::new(backend),
                config,
                encoding: Encoding::Columns,
            });
        }
        Self::open(path)
    }

    /// Opens an existing repository.
    pub fn open(path: &Path) -> Result<Self, BackupError> {
        Self::with_backend(Arc::new(LocalBackend::new(path)))
    }

    pub fn with_backend(backend: Arc<dyn Backend>) -> Result<Self, BackupError> {
        let not_repo = || BackupError::NotARepository {
            location: backend.location(),
        };
        let raw = match backend.get(CONFIG_KEY) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_repo()),
            Err(e) => return Err(BackupError::io(backend.location(), e)),
        };
        let config: RepoConfig = serde_json::from_slice(&raw).map_err(|_| not_repo())?;
        if config.format != FORMAT {
            return Err(not_repo());
        }
        let encoding = Encoding::from_name(&config.chunk_encoding);
        let Some(encoding) = encoding.filter(|_| config.version == 1) else {
            return Err(BackupError::Corrupt {
                what: format!(
                    "repository {} has format version {} with {} chunks; this upkeep reads \
                     version 1 with {} or {} chunks",
                    backend.location(),
                    config.version,
                    config.chunk_encoding,
                    Encoding::ROWS,
                    Encoding::COLUMNS
                ),
            });
        };
        Ok(Self {
            backend,
            config,
            encoding,
        })
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    pub fn has_chunk(&self, id: &str) -> Result<bool, BackupError> {
        self.backend
            .exists(&chunk_key(id))
            .map_err(|e| BackupError::io(self.location(), e))
    }

    /// Stores a chunk of canonical rows unless the repository has it. Returns its id and the
    /// bytes written (0 when the chunk was already there). The id is the SHA-256 of the stored
    /// (compact) form, which is a lossless rewrite of the canonical rows.
    pub fn put_chunk(
        &self,
        content: &[u8],
        rows: u64,
        level: i32,
    ) -> Result<(String, u64), BackupError> {
        let stored = self.encoding.compact(content, rows)?;
        let id = chunk_id(&stored);
        if self.has_chunk(&id)? {
            return Ok((id, 0));
        }
        let compressed = zstd::bulk::compress(&stored, level)
            .map_err(|e| BackupError::io(self.location(), e))?;
        self.backend
            .put(&chunk_key(&id), &compressed)
            .map_err(|e| BackupError::io(self.location(), e))?;
        Ok((id, u64::try_from(compressed.len()).unwrap_or(u64::MAX)))
    }

    /// Reads a chunk, decompresses it, checks that it hashes to its id, and returns its
    /// canonical rows.
    pub fn get_chunk(&self, id: &str, size: u64) -> Result<Vec<u8>, BackupError> {
        let raw = self.backend.get(&chunk_key(id)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BackupError::Corrupt {
                    what: format!("chunk {id} is missing"),
                }
            } else {
                BackupError::io(self.location(), e)
            }
        })?;
        let capacity = usize::try_from(size).unwrap_or(usize::MAX).min(1 << 30);
        let stored =
            zstd::bulk::decompress(&raw, capacity.max(1)).map_err(|e| BackupError::Corrupt {
                what: format!("chunk {id} does not decompress: {e}"),
            })?;
        if chunk_id(&stored) != id {
            return Err(BackupError::Corrupt {
                what: format!("chunk {id} does not match its hash"),
            });
        }
        self.encoding
            .expand(&stored)
            .map_err(|e| BackupError::Corrupt {
                what: format!("chunk {id}: {e}"),
            })
    }

    /// Ids of all stored chunks.
    pub fn list_chunks(&self) -> Result<Vec<String>, BackupError> {
        let keys = self
            .backend
            .list("chunks/")
            .map_err(|e| BackupError::io(self.location(), e))?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.rsplit('/').next().map(str::to_owned))
            .collect())
    }

    /// Stored (compressed) size of a chunk.
    pub fn chunk_size(&self, id: &str) -> Result<u64, BackupError> {
        self.backend
            .size(&chunk_key(id))
            .map_err(|e| BackupError::io(self.location(), e))
    }

    pub fn delete_chunk(&self, id: &str) -> Result<(), BackupError> {
        self.backend
            .delete(&chunk_key(id))
            .map_err(|e| BackupError::io(self.location(), e))
    }

    /// Writes a manifest last: after every chunk it names is stored.
    pub fn put_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let json = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
        self.backend
            .put(&format!("snapshots/{}.json", manifest.id), &json)
            .map_err(|e| BackupError::io(self.location(), e))
    }

    pub fn snapshot_ids(&self) -> Result<Vec<String>, BackupError> {
        let keys = self
            .backend
            .list("snapshots/")
            .map_err(|e| BackupError::io(self.location(), e))?;
        Ok(keys
            .into_iter()
            .filter_map(|k| {
                k.strip_prefix("snapshots/")
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(str::to_owned)
            })
            .collect())
    }

    pub fn load_manifest(&self, id: &str) -> Result<Manifest, BackupError> {
        let raw = self
            .backend
            .get(&format!("snapshots/{id}.json"))
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    BackupError::SnapshotNotFound {
                        id: id.to_owned(),
                        location: self.location(),
                    }
                } else {
                    BackupError::io(self.location(), e)
                }
            })?;
        let manifest: Manifest =
            serde_json::from_slice(&raw).map_err(|e| BackupError::Corrupt {
                what: format!("manifest of snapshot {id} is not valid: {e}"),
            })?;
        manifest.check(id)?;
        Ok(manifest)
    }

    /// Resolves `latest` or an id (or a unique prefix of one).
    pub fn resolve(&self, which: &str) -> Result<String, BackupError> {
        let mut ids = self.snapshot_ids()?;
        ids.sort();
        let not_found = || BackupError::SnapshotNotFound {
            id: which.to_owned(),
            location: self.location(),
        };
        if which == "latest" {
            return ids.pop().ok_or_else(not_found);
        }
        let matches: Vec<&String> = ids.iter().filter(|i| i.starts_with(which)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            _ if ids.iter().any(|i| i == which) => Ok(which.to_owned()),
            [] => Err(not_found()),
            many => Err(BackupError::AmbiguousSnapshot {
                prefix: which.to_owned(),
                location: self.location(),
                matches: many
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    pub fn delete_manifest(&self, id: &str) -> Result<(), BackupError> {
        self.backend
            .delete(&format!("snapshots/{id}.json"))
            .map_err(|e| BackupError::io(self.location(), e))
    }

    /// Takes a lock. A backup takes a shared one; prune an exclusive one. Each refuses while
    /// the other kind is held, so prune never deletes chunks a running backup relies on.
    pub fn lock(&self, exclusive: bool) -> Result<RepoLock, BackupError> {
        let io = |e| BackupError::io(self.location(), e);
        let name = format!(
            "locks/{}-{}-{:08x}.lock",
            if exclusive { "exclusive" } else { "shared" },
            std::process::id(),
            rand::random::<u32>()
        );
        let body = format!(
            "{{\"pid\":{},\"exclusive\":{exclusive}}}",
            std::process::id()
        );
        self.backend
            .create_new(&name, body.as_bytes())
            .map_err(io)?;
        let lock = RepoLock {
            backend: self.backend.clone(),
            key: name.clone(),
        };
        let others = self.backend.list("locks/").map_err(io)?;
        for other in others.iter().filter(|k| **k != name) {
            let other_exclusive = other.starts_with("locks/exclusive-");
            if (exclusive || other_exclusive) && lock_is_live(&self.backend, other) {
                return Err(BackupError::Locked {
                    location: self.location(),
                    holder: other.clone(),
                });
            }
        }
        Ok(lock)
    }
}

/// A lock whose owner process is gone (killed) is stale: it blocks nobody.
fn lock_is_live(backend: &Arc<dyn Backend>, key: &str) -> bool {
    let pid = key
        .strip_prefix("locks/")
        .and_then(|n| n.split('-').nth(1))
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) if Path::new("/proc").exists() => {
            let live = Path::new(&format!("/proc/{pid}")).exists();
            if !live {
                let _ = backend.delete(key);
            }
            live
        }
        _ => true,
    }
}

/// Held while a backup or prune runs; released on drop.
#[derive(Debug)]
pub struct RepoLock {
    backend: Arc<dyn Backend>,
    key: String,
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = self.backend.delete(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::BatchBuilder;

    fn rows() -> Vec<u8> {
        let mut b = BatchBuilder::default();
        for i in 0..300u32 {
            b.push_value(i.to_string().as_bytes());
            b.push_null();
            b.end_row();
        }
        b.take().as_bytes().to_vec()
    }

    #[test]
    fn new_repositories_store_columns_and_older_ones_keep_rows() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open_or_init(&dir.path().join("new"), 1).unwrap();
        assert_eq!(repo.config().chunk_encoding, Encoding::COLUMNS);
        let content = rows();
        let (id, written) = repo.put_chunk(&content, 300, 1).unwrap();
        assert!(written > 0);
        assert_eq!(repo.get_chunk(&id, content.len() as u64).unwrap(), content);

        // A repository made before columnar chunks says so in its config, and its chunks
        // are still read and written row by row.
        let old = dir.path().join("old");
        Repository::open_or_init(&old, 1).unwrap();
        let config = old.join(CONFIG_KEY);
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, text.replace(Encoding::COLUMNS, Encoding::ROWS)).unwrap();
        let repo = Repository::open(&old).unwrap();
        let (row_id, _) = repo.put_chunk(&content, 300, 1).unwrap();
        assert_ne!(row_id, id, "the stored forms differ");
        assert_eq!(
            repo.get_chunk(&row_id, content.len() as u64).unwrap(),
            content
        );

        std::fs::write(&config, text.replace(Encoding::COLUMNS, "parquet")).unwrap();
        let err = Repository::open(&old).unwrap_err();
        assert!(err.to_string().contains("parquet chunks"), "{err}");
    }
}
