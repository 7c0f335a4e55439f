//! The artifact store on the local filesystem.
//!
//! ```text
//! .reasongen/
//!   store.json          format version
//!   LOCK                shared by runs, exclusive for gc and verify --fix
//!   objects/ab/<digest>/  manifest.json + the artifact's files (read-only)
//!   keys/ab/<run key>.json    run key → digest, with the lineage behind the key
//!   refs/<recipe>/<node>.json latest artifact of each recipe node
//!   memo/memo.sqlite    item-level memo (see `crate::memo`)
//!   runs/<run id>/      events.jsonl and logs of one run
//!   locks/<run key>.lock  held while a node is computed, so two runs never race on it
//!   checkpoints/<run key>/  training checkpoints of a node run in progress
//!   tmp/<run id>/       work in progress; published by rename, never read by others
//! ```
//!
//! An artifact's large files from outside the store (a user's model weights) are held
//! as hard links or references instead of copies ([`held`]).
//!
//! Everything goes through [`Store`]; writes land in `tmp/` first and become visible by
//! an atomic rename only when complete, so no reader ever sees half an artifact.
//! Nothing here knows what a table or a model is.

mod checkpoints;
mod files;
mod gc;
mod held;
mod lock;
pub(crate) use lock::clean_abandoned_tmp;
mod objects;
mod refs;
mod verify;

pub use checkpoints::Checkpoints;
pub use files::FileHasher;
pub use gc::{GcOptions, GcReport};
pub(crate) use held::hold;
pub use held::{Held, HeldAs, HeldFile, Hold};
pub use lock::{NodeLock, StoreLock, TmpLease};
pub use refs::Ref;
pub use verify::{Problem, VerifyReport};

use crate::artifact::{Lineage, Manifest};
use crate::digest::Digest;
use crate::memo::{Memo, MemoDb};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Store format version written to `store.json`.
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("no artifact matches `{0}`")]
    NotFound(String),
    #[error("`{prefix}` is ambiguous: {count} artifacts start with it")]
    Ambiguous { prefix: String, count: usize },
    #[error("memo database {path}: {source}")]
    Memo {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Attach a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The record behind a run key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyRecord {
    pub digest: Digest,
    pub lineage: Lineage,
}

#[derive(Serialize, Deserialize)]
struct StoreInfo {
    format: u32,
}

/// A handle on one store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    memo: OnceLock<std::result::Result<Arc<MemoDb>, String>>,
}

impl Store {
    /// Open the store at `root`, creating it if needed.
    pub fn open(root: &Path) -> Result<Store> {
        // Absolute, so that paths handed to programs stay valid in any working folder.
        let root = &std::path::absolute(root).at(root)?;
        for dir in [
            "objects",
            "keys",
            "refs",
            "memo",
            "runs",
            "locks",
            "tmp",
            "checkpoints",
        ] {
            let p = root.join(dir);
            std::fs::create_dir_all(&p).at(&p)?;
        }
        let info = root.join("store.json");
        match std::fs::read(&info) {
            Ok(bytes) => {
                let parsed: StoreInfo =
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                        path: info.clone(),
                        message: e.to_string(),
                    })?;
                if parsed.format != FORMAT {
                    return Err(StoreError::Corrupt {
                        path: info,
                        message: format!(
                            "store format {} is not the format {FORMAT} this build reads",
                            parsed.format
                        ),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(
                    &info,
                    &serde_json::to_vec(&StoreInfo { format: FORMAT }).unwrap(),
                )?;
            }
            Err(e) => return Err(e).at(&info),
        }
        Ok(Store {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                memo: OnceLock::new(),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.inner.root.join(rel)
    }

    /// Folder of the artifact `digest` (which may not exist).
    pub fn object_dir(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.path("objects").join(&hex[..2]).join(hex)
    }

    fn key_path(&self, run_key: &Digest) -> PathBuf {
        let hex = run_key.to_hex();
        self.path("keys")
            .join(&hex[..2])
            .join(format!("{hex}.json"))
    }

    /// The run folder (events, logs) of `run_id`.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.path("runs").join(run_id)
    }

    /// Is there a complete artifact with this digest? (One `stat`, no content read.)
    pub fn has_object(&self, digest: &Digest) -> bool {
        self.object_dir(digest).join("manifest.json").is_file()
    }

    /// The key record of `run_key`, if that key was ever completed.
    pub fn key(&self, run_key: &Digest) -> Result<Option<KeyRecord>> {
        read_json_opt(&self.key_path(run_key))
    }

    /// The digest a completed run key produced, if its artifact is still present.
    pub fn lookup(&self, run_key: &Digest) -> Result<Option<KeyRecord>> {
        Ok(self.key(run_key)?.filter(|r| self.has_object(&r.digest)))
    }

    /// Record that `run_key` produced `digest`.
    pub fn put_key(&self, record: &KeyRecord) -> Result<()> {
        let path = self.key_path(&record.lineage.run_key);
        write_json_atomic(&path, record)
    }

    /// Every key record in the store, with its run key.
    pub fn keys(&self) -> Result<Vec<(Digest, KeyRecord)>> {
        let mut out = Vec::new();
        for path in files_under(&self.path("keys"), true)? {
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let Ok(run_key) = stem.parse::<Digest>() else {
                continue;
            };
            if let Some(rec) = read_json_opt::<KeyRecord>(&path)? {
                out.push((run_key, rec));
            }
        }
        Ok(out)
    }

    /// The manifest of artifact `digest`.
    pub fn manifest(&self, digest: &Digest) -> Result<Manifest> {
        let path = self.object_dir(digest).join("manifest.json");
        read_json_opt(&path)?.ok_or_else(|| StoreError::NotFound(digest.to_hex()))
    }

    /// Resolve a digest or an unambiguous prefix of at least 6 hex characters.
    pub fn resolve_digest(&self, prefix: &str) -> Result<Digest> {
        if let Ok(d) = prefix.parse::<Digest>() {
            return Ok(d);
        }
        if prefix.len() < 6 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(StoreError::NotFound(prefix.to_string()));
        }
        let prefix = prefix.to_ascii_lowercase();
        let dir = self.path("objects").join(&prefix[..2]);
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix)
                    && let Ok(d) = name.parse::<Digest>()
                {
                    found.push(d);
                }
            }
        }
        match found.len() {
            0 => Err(StoreError::NotFound(prefix)),
            1 => Ok(found[0]),
            count => Err(StoreError::Ambiguous { prefix, count }),
        }
    }

    /// Every complete artifact's digest.
    pub fn objects(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        let objects = self.path("objects");
        for shard in read_dir_sorted(&objects)? {
            for obj in read_dir_sorted(&shard)? {
                if let Some(d) = obj
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<Digest>().ok())
                {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// The item-level memo of `namespace` (see [`Memo`]).
    pub fn memo(&self, namespace: &str) -> Result<Memo> {
        let db = self
            .inner
            .memo
            .get_or_init(|| {
                MemoDb::open(&self.path("memo").join("memo.sqlite"))
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|message| StoreError::Corrupt {
                path: self.path("memo").join("memo.sqlite"),
                message,
            })?;
        Ok(Memo::new(db, namespace))
    }

    /// The file hasher with its stat cache in the memo.
    pub fn file_hasher(&self) -> Result<FileHasher> {
        Ok(FileHasher::new(self.memo("_stat")?))
    }
}

/// Write a file by writing a sibling temp file, syncing it and renaming it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("store paths have parents");
    std::fs::create_dir_all(dir).at(dir)?;
    // Unique per process and call, so concurrent writers never share a temp file.
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}.{n}.tmp",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    std::fs::rename(&tmp, path).at(path)?;
    sync_dir(dir);
    Ok(())
}

pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("store records serialise");
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

pub(crate) fn read_json_opt<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

/// Make a rename durable (best effort: not every filesystem syncs directories).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at(dir),
    };
    out.sort();
    Ok(out)
}

/// Every regular file under `dir`, recursively, sorted. With `skip_hidden`, names
/// starting with a dot (the store's own temp files) are left out.
pub(crate) fn files_under(dir: &Path, skip_hidden: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for p in read_dir_sorted(&d)? {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if skip_hidden && name.as_deref().is_some_and(|n| n.starts_with('.')) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).at(&p)?;
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Bytes that removing `path` would free: the size of everything under it, leaving
/// out files with other names (held hard links: the user's name keeps the bytes).
pub(crate) fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() && meta.nlink() > 1 {
        return 0;
    }
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}
