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
//!   runs/<run id>/      events.jsonl and logs of one run (files other processes read: [`run_files`])
//!   locks/<run key>/gen-<n>  node leases, held while a node is computed ([`lease`])
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
//!
//! **On S3** (`s3://bucket/prefix`, see [`remote`]) the same layout holds, with these
//! differences. The local folder becomes a cache (`$REASONGEN_CACHE`, else
//! `$XDG_CACHE_HOME/reasongen/s3/<bucket>/<prefix>`): stages read inputs and write
//! outputs there as on a local store, and `runs/`, `tmp/` and `checkpoints/` stay on
//! the machine. What is shared lives in the bucket:
//!
//! ```text
//! store.json                   format version (put-if-absent)
//! objects/<digest>/<files>     uploaded by digest, each checked before upload;
//! objects/<digest>/manifest.json  written last: the commit point of an artifact
//! keys/<run key>.json          put-if-absent: the first writer wins, a loser reads it
//! refs/<recipe>/<node>.json    moved by compare-and-swap on the ETag
//! memo/<namespace>/<id>.seg    item memo, many records per segment ([`memo_log`])
//! runs/<run id>/nodes/…        node descriptions and events shared with jobs ([`run_files`])
//! locks/<run key>/gen-<n>      node leases ([`lease`])
//! ```
//!
//! An object without its manifest is an upload in progress or one that was killed:
//! nobody reads it, `verify` reports it as stale once older than the store's grace
//! period, and `gc` removes it. Since S3 has no store-wide lock, `gc` on S3 spares
//! whatever is younger than the grace period (an hour by default), which covers a run
//! between publishing an artifact and recording its key.

mod checkpoints;
mod files;
mod gc;
mod held;
mod lease;
mod lock;
mod memo_log;
mod remote;
mod run_files;
pub(crate) use lock::clean_abandoned_tmp;
mod objects;
mod refs;
mod verify;

pub use checkpoints::Checkpoints;
pub use files::FileHasher;
pub use gc::{GcOptions, GcReport};
pub(crate) use held::hold;
pub use held::{Held, HeldAs, HeldFile, Hold};
pub use lease::NodeLock;
pub use lock::{StoreLock, TmpLease};
pub use refs::Ref;
pub use verify::{Problem, VerifyReport};

use crate::artifact::{Lineage, Manifest};
use crate::digest::Digest;
use crate::memo::{Memo, MemoDb};
pub(crate) use memo_log::MemoLog;
use remote::{Put, Remote};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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
    remote: Option<Remote>,
    memo_logs: Mutex<HashMap<String, Arc<MemoLog>>>,
    options: StoreOptions,
}

/// How a store is opened.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The local cache folder of an S3 store (default: `$REASONGEN_CACHE`, else under
    /// `$XDG_CACHE_HOME` or `~/.cache`). Not used by a local store.
    pub cache: Option<PathBuf>,
    /// How old unfinished work must be before `verify` calls it stale (a killed run's
    /// folder under `tmp/`; on S3 also an upload without its manifest), and on S3 how
    /// old an unreferenced object must be before `gc` removes it.
    pub grace: Duration,
    /// How long a node lease lasts without its holder renewing it.
    pub lease_ttl: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache: std::env::var_os("REASONGEN_CACHE").map(PathBuf::from),
            grace: Duration::from_secs(3600),
            lease_ttl: Duration::from_secs(30),
        }
    }
}

impl Store {
    /// Open the store at `root` (a folder, or an `s3://bucket/prefix` URL), creating it
    /// if needed.
    pub fn open(root: &Path) -> Result<Store> {
        Self::open_with(root, StoreOptions::default())
    }

    /// Open the store at `root` (a folder or an `s3://` URL) with `options`.
    pub fn open_with(root: &Path, options: StoreOptions) -> Result<Store> {
        let Some(url) = root.to_str().filter(|r| r.starts_with("s3://")) else {
            return Self::open_folder(root, None, options);
        };
        let remote = Remote::open(url)?;
        let cache = match &options.cache {
            Some(c) => c.clone(),
            None => default_cache(url).ok_or_else(|| StoreError::Corrupt {
                path: root.to_path_buf(),
                message: "no cache folder: set REASONGEN_CACHE, XDG_CACHE_HOME or HOME".into(),
            })?,
        };
        check_remote_format(&remote)?;
        Self::open_folder(&cache, Some(remote), options)
    }

    fn open_folder(root: &Path, remote: Option<Remote>, options: StoreOptions) -> Result<Store> {
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
                remote,
                memo_logs: Mutex::default(),
                options,
            }),
        })
    }

    /// The store's folder (on S3: its local cache).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub(crate) fn remote(&self) -> Option<&Remote> {
        self.inner.remote.as_ref()
    }

    pub(crate) fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// Whether an object in the bucket was last written longer ago than the grace
    /// period.
    pub(crate) fn past_grace(&self, meta: &object_store::ObjectMeta) -> bool {
        std::time::SystemTime::from(meta.last_modified)
            .elapsed()
            .is_ok_and(|age| age >= self.inner.options.grace)
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

    /// Is there a complete artifact with this digest? (One `stat`, or on S3 one HEAD of
    /// its manifest; no content read.) An S3 error counts as absent.
    pub fn has_object(&self, digest: &Digest) -> bool {
        match self.remote() {
            Some(r) => matches!(r.head(&remote_manifest(digest)), Ok(Some(_))),
            None => self.cached(digest),
        }
    }

    /// Is the artifact in the local folder (the store itself, or an S3 store's cache)?
    pub(crate) fn cached(&self, digest: &Digest) -> bool {
        self.object_dir(digest).join("manifest.json").is_file()
    }

    /// The key record of `run_key`, if that key was ever completed.
    pub fn key(&self, run_key: &Digest) -> Result<Option<KeyRecord>> {
        match self.remote() {
            Some(r) => {
                let rel = remote_key(run_key);
                r.get(&rel)?
                    .map(|(bytes, _)| parse_json(&r.url(), &rel, &bytes))
                    .transpose()
            }
            None => read_json_opt(&self.key_path(run_key)),
        }
    }

    /// The digest a completed run key produced, if its artifact is still present.
    pub fn lookup(&self, run_key: &Digest) -> Result<Option<KeyRecord>> {
        Ok(self.key(run_key)?.filter(|r| self.has_object(&r.digest)))
    }

    /// Record that `run_key` produced `digest`, and return the record now in force. On
    /// S3 the first writer of a key wins and a later one gets the winner's record back;
    /// a local store records the latest (its node lock keeps runs from racing).
    pub fn put_key(&self, record: &KeyRecord) -> Result<KeyRecord> {
        let Some(r) = self.remote() else {
            write_json_atomic(&self.key_path(&record.lineage.run_key), record)?;
            return Ok(record.clone());
        };
        let rel = remote_key(&record.lineage.run_key);
        match r.put(
            &rel,
            json_bytes(record).into(),
            object_store::PutMode::Create,
        )? {
            Put::Done => Ok(record.clone()),
            Put::Exists | Put::Changed => {
                self.key(&record.lineage.run_key)?
                    .ok_or_else(|| StoreError::Corrupt {
                        path: PathBuf::from(format!("{}/{rel}", r.url())),
                        message: "the key was there a moment ago and is gone".into(),
                    })
            }
        }
    }

    /// Every key record in the store, with its run key.
    pub fn keys(&self) -> Result<Vec<(Digest, KeyRecord)>> {
        let mut out = Vec::new();
        if let Some(r) = self.remote() {
            for (rel, _) in r.list("keys")? {
                let Some(run_key) = rel
                    .strip_prefix("keys/")
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.parse::<Digest>().ok())
                else {
                    continue;
                };
                if let Some(rec) = self.key(&run_key)? {
                    out.push((run_key, rec));
                }
            }
            return Ok(out);
        }
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

    /// The manifest of artifact `digest`. On S3 this brings the artifact into the
    /// local cache first, so that its folder ([`Store::object_dir`]) can be read.
    pub fn manifest(&self, digest: &Digest) -> Result<Manifest> {
        if !self.cached(digest) && self.remote().is_some() {
            self.fetch_object(digest)?;
        }
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
        if self.remote().is_some() {
            found = self
                .objects()?
                .into_iter()
                .filter(|d| d.to_hex().starts_with(&prefix))
                .collect();
        } else if let Ok(entries) = std::fs::read_dir(&dir) {
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
        if let Some(r) = self.remote() {
            return Ok(remote_objects(r)?
                .into_iter()
                .filter(|o| o.manifest.is_some())
                .map(|o| o.digest)
                .collect());
        }
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

    /// The local memo database (on S3: the cache of the records in the bucket).
    fn memo_db(&self) -> Result<Arc<MemoDb>> {
        self.inner
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
            })
    }

    /// The item-level memo of `namespace` (see [`Memo`]).
    pub fn memo(&self, namespace: &str) -> Result<Memo> {
        let db = self.memo_db()?;
        let Some(remote) = self.remote() else {
            return Ok(Memo::new(db, namespace));
        };
        let mut logs = self
            .inner
            .memo_logs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let log = match logs.get(namespace) {
            Some(log) => log.clone(),
            None => {
                let log = Arc::new(MemoLog::open(remote.clone(), db.clone(), namespace)?);
                logs.insert(namespace.to_string(), log.clone());
                log
            }
        };
        Ok(Memo::shared(db, namespace, log))
    }

    /// Send the memo records this process wrote and has not sent yet to the S3 store
    /// (done on its own every few seconds, and when the store is dropped).
    pub fn flush(&self) -> Result<()> {
        let logs: Vec<_> = self
            .inner
            .memo_logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        logs.iter().try_for_each(|log| log.flush())
    }

    /// The file hasher with its stat cache in the memo. The cache names paths and
    /// inodes of this machine, so it stays in the local folder even on S3.
    pub fn file_hasher(&self) -> Result<FileHasher> {
        Ok(FileHasher::new(Memo::new(self.memo_db()?, "_stat")))
    }
}

/// The default cache folder of the S3 store at `url`.
fn default_cache(url: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let name = url.trim_start_matches("s3://").trim_end_matches('/');
    Some(base.join("reasongen").join("s3").join(name))
}

/// Create `store.json` in the bucket, or check the format of the one there.
fn check_remote_format(remote: &Remote) -> Result<()> {
    let info = StoreInfo { format: FORMAT };
    remote.put(
        "store.json",
        json_bytes(&info).into(),
        object_store::PutMode::Create,
    )?;
    let bytes = remote
        .get("store.json")?
        .map(|(b, _)| b)
        .unwrap_or_default();
    let found: StoreInfo = parse_json(&remote.url(), "store.json", &bytes)?;
    if found.format != FORMAT {
        return Err(StoreError::Corrupt {
            path: PathBuf::from(format!("{}/store.json", remote.url())),
            message: format!(
                "store format {} is not the format {FORMAT} this build reads",
                found.format
            ),
        });
    }
    Ok(())
}

/// The bucket name of the manifest of artifact `digest`.
pub(crate) fn remote_manifest(digest: &Digest) -> String {
    format!("objects/{}/manifest.json", digest.to_hex())
}

/// The bucket name of the record of `run_key`.
pub(crate) fn remote_key(run_key: &Digest) -> String {
    format!("keys/{}.json", run_key.to_hex())
}

/// An artifact folder in the bucket, complete (with its manifest) or not.
pub(crate) struct RemoteObject {
    pub digest: Digest,
    /// Every file under the folder, manifest included, with its metadata.
    pub files: Vec<(String, object_store::ObjectMeta)>,
    pub manifest: Option<object_store::ObjectMeta>,
}

/// Every artifact folder in the bucket, by digest.
pub(crate) fn remote_objects(remote: &Remote) -> Result<Vec<RemoteObject>> {
    let mut out: Vec<RemoteObject> = Vec::new();
    for (rel, meta) in remote.list("objects")? {
        let Some((hex, file)) = rel.strip_prefix("objects/").and_then(|r| r.split_once('/')) else {
            continue;
        };
        let Ok(digest) = hex.parse::<Digest>() else {
            continue;
        };
        if out.last().is_none_or(|o| o.digest != digest) {
            out.push(RemoteObject {
                digest,
                files: Vec::new(),
                manifest: None,
            });
        }
        let obj = out.last_mut().expect("just pushed");
        if file == "manifest.json" {
            obj.manifest = Some(meta.clone());
        }
        obj.files.push((file.to_string(), meta));
    }
    Ok(out)
}

/// A store record as pretty JSON with a final newline.
pub(crate) fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("store records serialise");
    bytes.push(b'\n');
    bytes
}

/// Parse a record read from the bucket at `url`/`rel`.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    url: &str,
    rel: &str,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        path: PathBuf::from(format!("{}/{rel}", url.trim_end_matches('/'))),
        message: e.to_string(),
    })
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
    write_atomic(path, &json_bytes(value))
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
