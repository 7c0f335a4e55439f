//! The item-level memo: persistent, crash-safe key → value records shared by every run.
//!
//! Expensive per-item work (an LLM request, an image's codes, a judge's verdict) is
//! recorded under a key that is the digest of the canonical request, in a namespace
//! per kind of work. The memo lives in the store (`memo/memo.sqlite`), survives runs
//! and edits of the input tables, and is shared by concurrent processes.
//!
//! Storage is SQLite in WAL mode with `synchronous=NORMAL`: every `put` is its own
//! committed transaction, so a process killed at any instant loses nothing it was told
//! was stored (power loss may drop the last few commits, never corrupt the file).
//! Memory is SQLite's bounded page cache plus what the caller holds: proportional to
//! what a run touches, not to the size of the memo.
//!
//! In an S3 store the database is the machine's cache of the records in the bucket:
//! records are also appended to the namespace's segment log (`store::memo_log`), and a
//! lookup that misses reloads segments other machines wrote.

use crate::digest::Digest;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Page cache per connection, in KiB (SQLite's negative `cache_size` unit).
const CACHE_KIB: i64 = 64 * 1024;
/// WAL pages between checkpoints (SQLite's default is 1000): fewer, larger checkpoints
/// absorb the random writes of digest-keyed inserts.
const WAL_CHECKPOINT_PAGES: i64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MemoError {
    #[error("memo {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// Reading or writing the segment log of an S3 store.
    #[error("memo log: {0}")]
    Log(#[from] Box<crate::store::StoreError>),
}

/// The memo database of a store: one connection per process.
pub struct MemoDb {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl MemoDb {
    pub fn open(path: &Path) -> Result<MemoDb, MemoError> {
        let err = |source| MemoError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(err)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
            .map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS memo (
                ns TEXT NOT NULL,
                key BLOB NOT NULL,
                value BLOB NOT NULL,
                created_ms INTEGER NOT NULL,
                PRIMARY KEY (ns, key)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS memo_segments (
                ns TEXT NOT NULL,
                name TEXT NOT NULL,
                PRIMARY KEY (ns, name)
            ) WITHOUT ROWID;",
        )
        .map_err(err)?;
        Ok(MemoDb {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn err(&self, source: rusqlite::Error) -> MemoError {
        MemoError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, MemoError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| self.err(e))
    }

    /// Names of the segments of namespace `ns` already loaded (or written) here.
    pub(crate) fn known_segments(
        &self,
        ns: &str,
    ) -> Result<std::collections::HashSet<String>, MemoError> {
        self.with(|c| {
            c.prepare_cached("SELECT name FROM memo_segments WHERE ns = ?1")?
                .query_map(params![ns], |r| r.get(0))?
                .collect()
        })
    }

    /// Load the records of segment `name` (keeping records already here) and remember
    /// that it was loaded, in one transaction.
    pub(crate) fn absorb_segment(
        &self,
        ns: &str,
        name: &str,
        records: &[(Digest, Vec<u8>)],
    ) -> Result<(), MemoError> {
        let now = now_ms();
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO memo (ns, key, value, created_ms) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (key, value) in records {
                    stmt.execute(params![ns, &key.as_bytes()[..], value, now])?;
                }
            }
            tx.execute(
                "INSERT OR IGNORE INTO memo_segments (ns, name) VALUES (?1, ?2)",
                params![ns, name],
            )?;
            tx.commit()
        })
    }
}

/// One namespace of the memo, with hit and miss counters.
#[derive(Clone)]
pub struct Memo {
    db: Arc<MemoDb>,
    namespace: Arc<str>,
    stats: Arc<MemoStats>,
    /// The namespace's segment log in an S3 store.
    log: Option<Arc<crate::store::MemoLog>>,
}

/// Lookups and writes through one [`Memo`] handle (and its clones).
#[derive(Default, Debug)]
pub struct MemoStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub puts: AtomicU64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Memo {
    pub(crate) fn new(db: Arc<MemoDb>, namespace: &str) -> Memo {
        Memo {
            db,
            namespace: namespace.into(),
            stats: Arc::default(),
            log: None,
        }
    }

    /// A namespace of an S3 store's memo, whose records also go to `log`.
    pub(crate) fn shared(
        db: Arc<MemoDb>,
        namespace: &str,
        log: Arc<crate::store::MemoLog>,
    ) -> Memo {
        Memo {
            log: Some(log),
            ..Memo::new(db, namespace)
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn stats(&self) -> &MemoStats {
        &self.stats
    }

    pub fn get(&self, key: &Digest) -> Result<Option<Vec<u8>>, MemoError> {
        let lookup = || {
            self.db.with(|c| {
                c.prepare_cached("SELECT value FROM memo WHERE ns = ?1 AND key = ?2")?
                    .query_row(params![&*self.namespace, &key.as_bytes()[..]], |r| r.get(0))
                    .optional()
            })
        };
        let mut found = lookup()?;
        if found.is_none()
            && let Some(log) = &self.log
            && log.refresh()?
        {
            found = lookup()?;
        }
        let counter = if found.is_some() {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(found)
    }

    /// Store one record, durably against process crashes once this returns.
    pub fn put(&self, key: &Digest, value: &[u8]) -> Result<(), MemoError> {
        self.put_many(std::iter::once((key, value)))
    }

    /// Store several records in one transaction (all or none).
    pub fn put_many<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a Digest, &'a [u8])>,
    ) -> Result<(), MemoError> {
        let records: Vec<(&Digest, &[u8])> = records.into_iter().collect();
        let now = now_ms();
        let n = self.db.with(|c| {
            let tx = c.unchecked_transaction()?;
            let mut n = 0u64;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO memo (ns, key, value, created_ms) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (key, value) in &records {
                    stmt.execute(params![&*self.namespace, &key.as_bytes()[..], value, now])?;
                    n += 1;
                }
            }
            tx.commit()?;
            Ok(n)
        })?;
        self.stats.puts.fetch_add(n, Ordering::Relaxed);
        if let Some(log) = &self.log {
            log.append(&records)?;
        }
        Ok(())
    }

    pub fn get_json<T: DeserializeOwned>(&self, key: &Digest) -> Result<Option<T>, MemoError> {
        Ok(self
            .get(key)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    pub fn put_json<T: Serialize>(&self, key: &Digest, value: &T) -> Result<(), MemoError> {
        let bytes = serde_json::to_vec(value).expect("memo values serialise");
        self.put(key, &bytes)
    }

    /// Number of records in this namespace.
    pub fn len(&self) -> Result<u64, MemoError> {
        self.db.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM memo WHERE ns = ?1",
                params![&*self.namespace],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
    }

    pub fn is_empty(&self) -> Result<bool, MemoError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_namespaces_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memo.sqlite");
        let k = Digest::of_bytes(b"request");
        {
            let db = Arc::new(MemoDb::open(&path).unwrap());
            let a = Memo::new(db.clone(), "a");
            assert_eq!(a.get(&k).unwrap(), None);
            a.put(&k, b"answer").unwrap();
            assert_eq!(a.get(&k).unwrap().as_deref(), Some(&b"answer"[..]));
            assert_eq!(Memo::new(db, "b").get(&k).unwrap(), None);
            assert_eq!(a.stats().hits.load(Ordering::Relaxed), 1);
            assert_eq!(a.stats().misses.load(Ordering::Relaxed), 1);
        }
        let db = Arc::new(MemoDb::open(&path).unwrap());
        let a = Memo::new(db, "a");
        assert_eq!(a.get(&k).unwrap().as_deref(), Some(&b"answer"[..]));
        assert_eq!(a.len().unwrap(), 1);
    }
}
