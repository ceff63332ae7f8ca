//! The repository: chunks stored once under the SHA-256 of their content, zstd-compressed, and
//! snapshot manifests. Storage goes through [`Backend`], so another backend (object storage)
//! can be added without touching the tools.

use std::io::{Read, Write};
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

    /// Writes `key` from what `write` produces, as atomically as [`Self::put`]; returns the
    /// bytes written. A backend that can stream (a file) never holds the object whole.
    fn put_with(
        &self,
        key: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        let mut buf = Vec::new();
        write(&mut buf)?;
        self.put(key, &buf)?;
        Ok(buf.len() as u64)
    }

    /// A reader of `key`'s bytes; a backend that can stream does not read it whole first.
    fn open(&self, key: &str) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(std::io::Cursor::new(self.get(key)?)))
    }
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

    /// Writes what `write` produces to a new file in `tmp/`, synced; returns its path and
    /// size.
    fn write_tmp(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<(PathBuf, u64)> {
        let dir = self.root.join("tmp");
        private_dir_all(&dir)?;
        let name = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        let path = dir.join(name);
        let f = private_file().create(true).truncate(true).open(&path)?;
        let written = (|| {
            let mut out = std::io::BufWriter::with_capacity(256 << 10, f);
            write(&mut out)?;
            let f = out
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?;
            f.sync_all()?;
            f.metadata().map(|m| m.len())
        })();
        match written {
            Ok(n) => Ok((path, n)),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Moves a written temporary file to `key`, then syncs the folder.
    fn rename_into(&self, tmp: &Path, key: &str) -> std::io::Result<()> {
        let dest = self.path(key);
        let parent = dest.parent().expect("keys have a folder");
        private_dir_all(parent)?;
        if let Err(e) = std::fs::rename(tmp, &dest) {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
        sync_dir(parent)
    }
}

/// Creates a folder and its missing parents readable by the owner only (0700): a repository
/// holds a customer's rows.
fn private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Options that create a file readable by the owner only (0600).
fn private_file() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Backend for LocalBackend {
    fn put(&self, key: &str, data: &[u8]) -> std::io::Result<()> {
        let (tmp, _) = self.write_tmp(&mut |w| w.write_all(data))?;
        self.rename_into(&tmp, key)
    }

    fn put_with(
        &self,
        key: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        let (tmp, written) = self.write_tmp(write)?;
        self.rename_into(&tmp, key)?;
        Ok(written)
    }

    fn open(&self, key: &str) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(std::fs::File::open(self.path(key))?))
    }

    fn create_new(&self, key: &str, data: &[u8]) -> std::io::Result<bool> {
        let dest = self.path(key);
        private_dir_all(dest.parent().expect("keys have a folder"))?;
        match private_file().create_new(true).open(&dest) {
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

/// Chunks up to this size are compressed whole; larger ones (a row holding a huge value)
/// stream into the backend piece by piece, never held a second or third time.
const WHOLE_CHUNK_BYTES: usize = 16 << 20;

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
            private_dir_all(path).map_err(|e| BackupError::io(path.display(), e))?;
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
    /// (compact) form, which is a lossless rewrite of the canonical rows. The stored form is
    /// hashed and compressed piece by piece into the backend, never held whole: a chunk of one
    /// 50 MB value costs no second and third 50 MB.
    pub fn put_chunk(
        &self,
        content: &[u8],
        rows: u64,
        level: i32,
    ) -> Result<(String, u64), BackupError> {
        let pieces = self.encoding.pieces(content, rows)?;
        let len = pieces.len();
        if len <= WHOLE_CHUNK_BYTES {
            // The usual chunk (a few MB): laid out once, hashed and compressed in one call
            // each, which zstd sizes its tables for.
            let stored = pieces.concat();
            let id = chunk_id(&stored);
            if self.has_chunk(&id)? {
                return Ok((id, 0));
            }
            let compressed = zstd::bulk::compress(&stored, level)
                .map_err(|e| BackupError::io(self.location(), e))?;
            self.backend
                .put(&chunk_key(&id), &compressed)
                .map_err(|e| BackupError::io(self.location(), e))?;
            return Ok((id, u64::try_from(compressed.len()).unwrap_or(u64::MAX)));
        }
        let mut hash = Sha256::new();
        pieces.each(|p| hash.update(p));
        let id = hex::encode(hash.finalize());
        if self.has_chunk(&id)? {
            return Ok((id, 0));
        }
        let written = self
            .backend
            .put_with(&chunk_key(&id), &mut |out| {
                let mut z = zstd::stream::write::Encoder::new(out, level)?;
                z.set_pledged_src_size(u64::try_from(len).ok())?;
                let mut result = Ok(());
                pieces.each(|p| {
                    if result.is_ok() {
                        result = z.write_all(p);
                    }
                });
                result?;
                z.finish().map(|_| ())
            })
            .map_err(|e| BackupError::io(self.location(), e))?;
        Ok((id, written))
    }

    /// Reads a chunk, decompresses it as it streams in, checks that it hashes to its id, and
    /// returns its canonical rows.
    pub fn get_chunk(&self, id: &str, size: u64) -> Result<Vec<u8>, BackupError> {
        let raw = self.backend.open(&chunk_key(id)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BackupError::Corrupt {
                    what: format!("chunk {id} is missing"),
                }
            } else {
                BackupError::io(self.location(), e)
            }
        })?;
        let corrupt = |e: std::io::Error| BackupError::Corrupt {
            what: format!("chunk {id} does not decompress: {e}"),
        };
        let capacity = usize::try_from(size).unwrap_or(usize::MAX).min(1 << 30);
        let mut stored = Vec::with_capacity(capacity);
        zstd::stream::read::Decoder::new(raw)
            .map_err(corrupt)?
            // A chunk never holds more than its canonical bytes: a bomb is cut off there.
            .take(
                u64::try_from(capacity)
                    .unwrap_or(u64::MAX)
                    .saturating_add(1 << 20),
            )
            .read_to_end(&mut stored)
            .map_err(corrupt)?;
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
    /// the other kind is held and live, so prune never deletes chunks a running backup relies
    /// on. The lock is refreshed while it is held (see [`LockInfo`]).
    pub fn lock(&self, exclusive: bool) -> Result<RepoLock, BackupError> {
        let io = |e| BackupError::io(self.location(), e);
        let info = LockInfo::mine(exclusive);
        let key = format!(
            "locks/{}-{}.lock",
            if exclusive { "exclusive" } else { "shared" },
            info.id
        );
        self.backend.create_new(&key, &info.to_json()).map_err(io)?;
        let lock = RepoLock::hold(self.backend.clone(), key.clone(), info);
        for other in self.backend.list("locks/").map_err(io)? {
            if other == key {
                continue;
            }
            let other_exclusive = other.starts_with("locks/exclusive-");
            if (exclusive || other_exclusive) && lock_is_live(&self.backend, &other) {
                let holder = self
                    .backend
                    .get(&other)
                    .ok()
                    .and_then(|raw| serde_json::from_slice::<LockInfo>(&raw).ok())
                    .map_or_else(|| other.clone(), |i| i.describe());
                return Err(BackupError::Locked {
                    location: self.location(),
                    holder,
                });
            }
        }
        Ok(lock)
    }

    /// Deletes what killed runs left in `tmp/` (objects written but never renamed into
    /// place). Only while holding the exclusive lock: no other run is writing. Returns how
    /// many files went.
    pub fn clean_tmp(&self, _exclusive: &RepoLock) -> Result<u64, BackupError> {
        let keys = self
            .backend
            .list("tmp/")
            .map_err(|e| BackupError::io(self.location(), e))?;
        for key in &keys {
            self.backend
                .delete(key)
                .map_err(|e| BackupError::io(self.location(), e))?;
        }
        Ok(keys.len() as u64)
    }
}

/// How often a held lock is rewritten with a new `refreshed` time.
pub const LOCK_REFRESH: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// How long a lock of another machine (or PID namespace) may go unrefreshed before it counts
/// as stale: its holder has died, or lost the repository, long ago.
pub const LOCK_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// What a lock file says of its holder. On the holder's own machine and PID namespace, a lock
/// whose process is gone (or is another process with the same id) is stale at once;
/// elsewhere (another host, another container sharing the volume) only once it has gone
/// unrefreshed for [`LOCK_STALE_AFTER`]: a process id means nothing there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub exclusive: bool,
    pub hostname: String,
    pub pid: u32,
    /// `/proc/self/ns/pid` of the holder (`pid:[4026531836]`): process ids are its own.
    #[serde(default)]
    pub pid_namespace: Option<String>,
    /// The kernel's boot id: process ids are reused across boots.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The holder's start time in clock ticks since boot (`/proc/PID/stat`), which a later
    /// process reusing the id does not share.
    #[serde(default)]
    pub process_start: Option<u64>,
    pub created: String,
    pub refreshed: String,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot.
fn process_start(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl LockInfo {
    fn mine(exclusive: bool) -> Self {
        let now = now_rfc3339();
        Self {
            id: format!("{:016x}", rand::random::<u64>()),
            exclusive,
            hostname: read_trimmed("/proc/sys/kernel/hostname")
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "unknown".into()),
            pid: std::process::id(),
            pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .map(|p| p.display().to_string()),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            process_start: process_start("self"),
            created: now.clone(),
            refreshed: now,
        }
    }

    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a lock serializes")
    }

    /// Whether the holder is known to be on this machine, in this PID namespace, since this
    /// boot: then its process can be looked up.
    fn is_local(&self) -> bool {
        let me = Self::mine(false);
        self.hostname == me.hostname
            && self.pid_namespace.is_some()
            && self.pid_namespace == me.pid_namespace
            && self.boot_id.is_some()
            && self.boot_id == me.boot_id
    }

    /// Whether the lock still stands for a running holder.
    fn is_live(&self) -> bool {
        if self.is_local() {
            let pid = self.pid.to_string();
            return process_start(&pid).is_some_and(|start| Some(start) == self.process_start);
        }
        let Ok(refreshed) = chrono::DateTime::parse_from_rfc3339(&self.refreshed) else {
            return true;
        };
        let age = chrono::Utc::now().signed_duration_since(refreshed);
        age.to_std().map_or(true, |age| age <= LOCK_STALE_AFTER)
    }

    fn describe(&self) -> String {
        format!(
            "{} lock of process {} on {}, created {}, refreshed {}",
            if self.exclusive {
                "an exclusive"
            } else {
                "a shared"
            },
            self.pid,
            self.hostname,
            self.created,
            self.refreshed
        )
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether another run's lock still holds; a stale one is deleted. A lock file that cannot
/// be read as a lock (written by an older upkeep: `{"pid": …}`) is judged by its process on
/// this machine, as those versions did.
fn lock_is_live(backend: &Arc<dyn Backend>, key: &str) -> bool {
    let live = match backend.get(key) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(_) => true,
        Ok(raw) => match serde_json::from_slice::<LockInfo>(&raw) {
            Ok(info) => info.is_live(),
            Err(_) => serde_json::from_slice::<serde_json::Value>(&raw)
                .ok()
                .and_then(|v| v["pid"].as_u64())
                .is_none_or(|pid| Path::new(&format!("/proc/{pid}")).exists()),
        },
    };
    if !live {
        let _ = backend.delete(key);
    }
    live
}

/// Held while a backup or prune runs: a thread rewrites it every [`LOCK_REFRESH`] (or
/// `UPKEEP_LOCK_REFRESH_SECONDS`), and notices when it is gone; released on drop.
#[derive(Debug)]
pub struct RepoLock {
    backend: Arc<dyn Backend>,
    key: String,
    id: String,
    lost: Arc<std::sync::atomic::AtomicBool>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl RepoLock {
    fn hold(backend: Arc<dyn Backend>, key: String, info: LockInfo) -> Self {
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let every = std::env::var("UPKEEP_LOCK_REFRESH_SECONDS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map_or(LOCK_REFRESH, std::time::Duration::from_secs);
        let id = info.id.clone();
        let refresher = {
            let (backend, key, lost) = (backend.clone(), key.clone(), lost.clone());
            std::thread::Builder::new()
                .name("upkeep-lock".into())
                .spawn(move || {
                    let mut info = info;
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(every)
                    {
                        if !still_ours(&backend, &key, &info.id) {
                            lost.store(true, std::sync::atomic::Ordering::SeqCst);
                            return;
                        }
                        info.refreshed = now_rfc3339();
                        if backend.put(&key, &info.to_json()).is_err() {
                            // A failed write is retried at the next refresh; the lock goes
                            // stale for others only after many.
                            continue;
                        }
                    }
                })
                .ok()
        };
        Self {
            backend,
            key,
            id,
            lost,
            stop: Some(stop),
            refresher,
        }
    }

    /// Fails when the lock is no longer this run's: another run judged it stale and removed
    /// it, so it may be deleting what this run relies on. A backup checks before writing its
    /// manifest, a prune before deleting.
    pub fn check(&self) -> Result<(), BackupError> {
        if self.lost.load(std::sync::atomic::Ordering::SeqCst)
            || !still_ours(&self.backend, &self.key, &self.id)
        {
            return Err(BackupError::LockLost {
                location: self.backend.location(),
                key: self.key.clone(),
            });
        }
        Ok(())
    }
}

/// Whether the lock file at `key` is there and still carries `id`.
fn still_ours(backend: &Arc<dyn Backend>, key: &str, id: &str) -> bool {
    match backend.get(key) {
        Ok(raw) => serde_json::from_slice::<LockInfo>(&raw).is_ok_and(|i| i.id == id),
        // An unreadable repository is not a lost lock: the next write fails on its own.
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        if still_ours(&self.backend, &self.key, &self.id) {
            let _ = self.backend.delete(&self.key);
        }
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

    /// Writes a lock file as another run would.
    fn forge(repo: &Repository, name: &str, info: &LockInfo) {
        repo.backend
            .put(&format!("locks/{name}.lock"), &info.to_json())
            .unwrap();
    }

    fn ago(d: std::time::Duration) -> String {
        (chrono::Utc::now() - chrono::Duration::from_std(d).unwrap())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    #[test]
    fn another_hosts_lock_is_stale_only_once_unrefreshed_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open_or_init(dir.path(), 1).unwrap();
        let mut other = LockInfo::mine(false);
        other.hostname = "db-backup-2".into();
        other.pid = 1;
        other.refreshed = ago(LOCK_STALE_AFTER - std::time::Duration::from_secs(60));
        forge(&repo, "shared-other", &other);
        let err = repo.lock(true).unwrap_err();
        assert!(
            err.to_string().contains("process 1 on db-backup-2"),
            "{err}"
        );
        // The same lock, unrefreshed for longer: its holder is gone; it is removed.
        other.refreshed = ago(LOCK_STALE_AFTER + std::time::Duration::from_secs(60));
        forge(&repo, "shared-other", &other);
        drop(repo.lock(true).unwrap());
        assert!(!dir.path().join("locks/shared-other.lock").exists());
    }

    #[test]
    fn a_local_lock_is_stale_when_its_process_is_gone_or_another() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open_or_init(dir.path(), 1).unwrap();
        // A live process of this machine (this one), freshly refreshed or not.
        let mut mine = LockInfo::mine(false);
        mine.refreshed = ago(LOCK_STALE_AFTER * 2);
        forge(&repo, "shared-live", &mine);
        assert!(matches!(repo.lock(true), Err(BackupError::Locked { .. })));
        // The same id, but another process started at another time: a reused pid.
        mine.process_start = mine.process_start.map(|s| s + 1);
        mine.refreshed = ago(std::time::Duration::ZERO);
        forge(&repo, "shared-live", &mine);
        drop(repo.lock(true).unwrap());
        // A pid that no process has.
        let mut dead = LockInfo::mine(false);
        dead.pid = u32::MAX - 1;
        forge(&repo, "shared-dead", &dead);
        drop(repo.lock(true).unwrap());
        assert_eq!(repo.backend.list("locks/").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_held_lock_is_refreshed_and_knows_when_it_is_taken_away() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open_or_init(dir.path(), 1).unwrap();
        let info = LockInfo::mine(false);
        let lock = RepoLock::hold(
            repo.backend.clone(),
            "locks/shared-x.lock".into(),
            info.clone(),
        );
        repo.backend
            .put("locks/shared-x.lock", &info.to_json())
            .unwrap();
        lock.check().unwrap();
        std::fs::remove_file(dir.path().join("locks/shared-x.lock")).unwrap();
        let err = lock.check().unwrap_err();
        assert!(
            err.to_string().contains("was removed by another run"),
            "{err}"
        );
        drop(lock);

        // The refresher rewrites the lock's time (every second here).
        std::env::set_var("UPKEEP_LOCK_REFRESH_SECONDS", "1");
        let held = repo.lock(false).unwrap();
        std::env::remove_var("UPKEEP_LOCK_REFRESH_SECONDS");
        let key = repo.backend.list("locks/").unwrap().pop().unwrap();
        let read = || serde_json::from_slice::<LockInfo>(&repo.backend.get(&key).unwrap()).unwrap();
        let first = read();
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let later = read();
        assert_eq!(later.id, first.id);
        assert!(later.refreshed > first.refreshed, "{later:?}");
        held.check().unwrap();
        drop(held);
        assert!(repo.backend.list("locks/").unwrap().is_empty());
    }
}
