//! Content digests of files outside the store (sources, programs, scripts), with a
//! stat cache so that a re-run does not re-read unchanged files.
//!
//! The cache key is (path, size, mtime, ctime, inode, device). An entry is not cached
//! while its mtime is within two seconds of now: a file written in the same clock tick
//! as it was hashed could change again without its mtime moving.

use crate::digest::Digest;
use crate::memo::Memo;
use serde::Serialize;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Hashes files and folders by content, remembering unchanged ones.
pub struct FileHasher {
    cache: Memo,
}

#[derive(Serialize)]
struct StatKey<'a> {
    path: &'a str,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

#[derive(Serialize)]
struct DirEntryDigest<'a> {
    name: &'a str,
    digest: Digest,
}

impl FileHasher {
    pub(crate) fn new(cache: Memo) -> Self {
        FileHasher { cache }
    }

    /// Digest of a file's bytes, or of a folder as the sorted list of its entries'
    /// names and digests (recursively). Symlinks are followed.
    pub fn digest(&self, path: &Path) -> std::io::Result<Digest> {
        let meta = std::fs::metadata(path)?;
        if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)?
                .collect::<std::io::Result<Vec<_>>>()?
                .into_iter()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            entries.sort();
            let mut digests = Vec::with_capacity(entries.len());
            for name in &entries {
                digests.push(DirEntryDigest {
                    name,
                    digest: self.digest(&path.join(name))?,
                });
            }
            return Ok(Digest::of_json(&digests));
        }
        let key = stat_key(path, &meta)?;
        if let Ok(Some(hit)) = self.cache.get(&key)
            && let Ok(text) = std::str::from_utf8(&hit)
            && let Ok(d) = text.parse::<Digest>()
        {
            return Ok(d);
        }
        let (digest, _) = Digest::of_file(path)?;
        self.cache_settled(&key, &meta, digest);
        Ok(digest)
    }

    /// Record that the file `path`, whose stat is now `meta`, still has the digest it
    /// was hashed to: for a change of its inode that leaves the bytes alone (a new hard
    /// link moves the ctime).
    pub(crate) fn remember(&self, path: &Path, meta: &std::fs::Metadata, digest: Digest) {
        if let Ok(key) = stat_key(path, meta) {
            self.cache_settled(&key, meta, digest);
        }
    }

    /// Cache `digest` under `key` unless the file was modified in the last two seconds.
    fn cache_settled(&self, key: &Digest, meta: &std::fs::Metadata, digest: Digest) {
        let settled = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > Duration::from_secs(2));
        if settled {
            // A failed cache write costs a re-hash next time, nothing more.
            let _ = self.cache.put(key, digest.to_hex().as_bytes());
        }
    }
}

/// The stat cache's key of the file `path` with stat `meta`.
fn stat_key(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<Digest> {
    let abs = std::fs::canonicalize(path)?;
    Ok(Digest::of_json(&StatKey {
        path: &abs.to_string_lossy(),
        size: meta.len(),
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        ino: meta.ino(),
        dev: meta.dev(),
    }))
}
