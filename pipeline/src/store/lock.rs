//! Locks that let several processes share one store safely.
//!
//! - [`StoreLock`]: runs hold `LOCK` shared; `gc` and `verify --fix` hold it exclusive,
//!   so nothing is collected while a run may still publish it.
//! - [`TmpLease`]: a run's folder under `tmp/`, with a lock that dies with the process,
//!   so leftovers of a killed run are recognised and removed by the next one.
//!
//! Both are `flock`-style locks: the kernel releases them when the process dies, even by
//! `kill -9`, so a crash never leaves the store locked. Both guard the local folder
//! only (on S3, its cache): the lock between machines is the node lease
//! ([`super::lease`]). On S3, [`StoreLock`] is no lock at all: `gc` there spares what
//! is younger than the store's grace period instead (see the store's module doc).

use super::{IoContext, Result, Store, read_dir_sorted};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .at(path)
}

/// The store-wide lock.
pub struct StoreLock {
    _file: Option<File>,
}

impl StoreLock {
    /// Shared access for a run. If `gc` holds the store, `on_wait` is told why, and the
    /// call blocks until it is done (or fails at once when `wait` is false).
    pub fn shared(store: &Store, wait: bool, on_wait: impl FnOnce(&str)) -> Result<StoreLock> {
        Self::acquire(store, false, wait, on_wait)
    }

    /// Exclusive access (gc, verify --fix), waiting for running runs to finish.
    pub fn exclusive(
        store: &Store,
        holder: &str,
        wait: bool,
        on_wait: impl FnOnce(&str),
    ) -> Result<StoreLock> {
        let lock = Self::acquire(store, true, wait, on_wait)?;
        if store.remote().is_some() {
            return Ok(lock);
        }
        let info = store.path("LOCK.holder");
        std::fs::write(&info, format!("{holder} (pid {})", std::process::id())).at(&info)?;
        Ok(lock)
    }

    fn acquire(
        store: &Store,
        exclusive: bool,
        wait: bool,
        on_wait: impl FnOnce(&str),
    ) -> Result<StoreLock> {
        if store.remote().is_some() {
            return Ok(StoreLock { _file: None });
        }
        let path = store.path("LOCK");
        let file = open_lock_file(&path)?;
        let attempt = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match attempt {
            Ok(()) => return Ok(StoreLock { _file: Some(file) }),
            Err(TryLockError::Error(e)) => return Err(e).at(&path),
            Err(TryLockError::WouldBlock) => {}
        }
        let why = if exclusive {
            "runs are using the store".to_string()
        } else {
            let holder = std::fs::read_to_string(store.path("LOCK.holder")).unwrap_or_default();
            format!("the store is held exclusively by {}", holder.trim())
        };
        if !wait {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("{why}; try again when it is done"),
            ))
            .at(&path);
        }
        on_wait(&why);
        if exclusive {
            file.lock().at(&path)?;
        } else {
            file.lock_shared().at(&path)?;
        }
        Ok(StoreLock { _file: Some(file) })
    }
}

/// A run's private folder under `tmp/`.
pub struct TmpLease {
    dir: PathBuf,
    lock_path: PathBuf,
    _file: File,
}

impl TmpLease {
    pub fn new(store: &Store, run_id: &str) -> Result<TmpLease> {
        let dir = store.path("tmp").join(run_id);
        let lock_path = store.path("tmp").join(format!("{run_id}.lock"));
        let file = open_lock_file(&lock_path)?;
        file.lock().at(&lock_path)?;
        std::fs::create_dir_all(&dir).at(&dir)?;
        Ok(TmpLease {
            dir,
            lock_path,
            _file: file,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TmpLease {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Folders under `tmp/` whose run is gone (its lock is free), with their lock files,
/// if last modified at least `min_age` ago. Runs pass a minimum age so they never race
/// a lease being created; `gc`, holding the store exclusively, passes zero.
pub(crate) fn abandoned_tmp(store: &Store, min_age: Duration) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in read_dir_sorted(&store.path("tmp"))? {
        let old_enough = std::fs::symlink_metadata(&p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        if !old_enough {
            continue;
        }
        if p.extension().is_some_and(|e| e == "lock") {
            let file = open_lock_file(&p)?;
            if file.try_lock().is_ok() {
                out.push(p.with_extension(""));
                out.push(p);
            }
        } else if p.is_dir() && !p.with_extension("lock").exists() {
            out.push(p);
        }
    }
    Ok(out)
}

/// Remove what killed runs left in `tmp/`; returns how many entries were removed.
pub(crate) fn clean_abandoned_tmp(store: &Store, min_age: Duration) -> Result<usize> {
    let mut n = 0;
    for p in abandoned_tmp(store, min_age)? {
        let removed = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        if removed.is_ok() {
            n += 1;
        }
    }
    Ok(n)
}
