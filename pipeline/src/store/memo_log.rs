//! The item memo of an S3 store: each namespace is a log of immutable segment objects,
//! `memo/<namespace>/<id>.seg`, each holding many records (one object per record would
//! cost a request per item and a huge listing).
//!
//! A writer appends records to its local database at once and to a pending batch,
//! which becomes one new segment (put-if-absent under a fresh id) once it holds
//! [`BATCH`] records or its oldest record is [`MAX_DELAY`] old, on [`Store::flush`]
//! and when the store is dropped. A process killed in between loses at most those
//! pending records to other machines (they are recomputed; its own database keeps
//! them). A reader lists the namespace once when it opens it and again on a miss (at
//! most every [`RELIST`]), and loads the segments it has not loaded yet into its local
//! database ([`crate::memo`]), so one machine finds the work of another.
//!
//! Segment format: `RGMEMO1\n`, then per record the key as 64 hex characters, the
//! value's length as 4 little-endian bytes, and the value.
//!
//! [`Store::flush`]: super::Store::flush

use super::remote::{Put, Remote};
use super::{Result, StoreError};
use crate::digest::Digest;
use crate::memo::{MemoDb, MemoError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAGIC: &[u8] = b"RGMEMO1\n";
/// Records per segment before it is sent.
const BATCH: usize = 512;
/// Longest a record waits before its segment is sent (checked on each write).
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Least time between two listings of a namespace prompted by misses.
const RELIST: Duration = Duration::from_secs(10);

pub(crate) struct MemoLog {
    remote: Remote,
    db: Arc<MemoDb>,
    namespace: String,
    pending: Mutex<Pending>,
    listed: Mutex<Instant>,
}

#[derive(Default)]
struct Pending {
    records: Vec<(Digest, Vec<u8>)>,
    since: Option<Instant>,
}

impl MemoLog {
    /// Open the log of `namespace`, loading the segments the local database lacks.
    pub(crate) fn open(remote: Remote, db: Arc<MemoDb>, namespace: &str) -> Result<MemoLog> {
        let log = MemoLog {
            remote,
            db,
            namespace: namespace.to_string(),
            pending: Mutex::default(),
            listed: Mutex::new(Instant::now()),
        };
        log.load_new()?;
        Ok(log)
    }

    fn prefix(&self) -> String {
        format!("memo/{}", self.namespace)
    }

    fn error(&self, message: String) -> StoreError {
        StoreError::Corrupt {
            path: PathBuf::from(format!("{}/{}", self.remote.url(), self.prefix())),
            message,
        }
    }

    fn db_error(&self, e: MemoError) -> StoreError {
        self.error(e.to_string())
    }

    /// Load every segment of the namespace not loaded here yet; whether any was.
    fn load_new(&self) -> Result<bool> {
        let known = self
            .db
            .known_segments(&self.namespace)
            .map_err(|e| self.db_error(e))?;
        let mut loaded = false;
        for (rel, _) in self.remote.list(&self.prefix())? {
            let Some(name) = rel.rsplit('/').next().filter(|n| n.ends_with(".seg")) else {
                continue;
            };
            if known.contains(name) {
                continue;
            }
            let Some((bytes, _)) = self.remote.get(&rel)? else {
                continue;
            };
            let records = decode(&bytes).map_err(|m| self.error(format!("{name}: {m}")))?;
            self.db
                .absorb_segment(&self.namespace, name, &records)
                .map_err(|e| self.db_error(e))?;
            loaded = true;
        }
        Ok(loaded)
    }

    /// After a miss: load segments written since the last listing, unless it was a
    /// moment ago. Whether anything new was loaded.
    pub(crate) fn refresh(&self) -> std::result::Result<bool, MemoError> {
        {
            let mut listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
            if listed.elapsed() < RELIST {
                return Ok(false);
            }
            *listed = Instant::now();
        }
        self.load_new().map_err(|e| MemoError::Log(Box::new(e)))
    }

    /// Queue records written here; sends a segment when the batch is full or old.
    pub(crate) fn append(
        &self,
        records: &[(&Digest, &[u8])],
    ) -> std::result::Result<(), MemoError> {
        let due = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.records
                .extend(records.iter().map(|(k, v)| (**k, v.to_vec())));
            let since = *p.since.get_or_insert_with(Instant::now);
            p.records.len() >= BATCH || since.elapsed() >= MAX_DELAY
        };
        if due {
            self.flush().map_err(|e| MemoError::Log(Box::new(e)))?;
        }
        Ok(())
    }

    /// Send the pending records as one segment.
    pub(crate) fn flush(&self) -> Result<()> {
        let records = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.since = None;
            std::mem::take(&mut p.records)
        };
        if records.is_empty() {
            return Ok(());
        }
        let bytes = bytes::Bytes::from(encode(&records));
        loop {
            let name = format!("{}.seg", unique_id());
            let rel = format!("{}/{name}", self.prefix());
            if let Put::Done =
                self.remote
                    .put(&rel, bytes.clone(), object_store::PutMode::Create)?
            {
                // Its records are in the local database already.
                return self
                    .db
                    .absorb_segment(&self.namespace, &name, &[])
                    .map_err(|e| self.db_error(e));
            }
        }
    }
}

impl Drop for MemoLog {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            eprintln!("warning: memo records not sent to the store: {e}");
        }
    }
}

/// An id no other writer picks: host, process, time and a counter, hashed.
pub(crate) fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{} {} {nanos} {}",
        host.trim(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    Digest::of_bytes(seed.as_bytes()).to_hex()[..32].to_string()
}

fn encode(records: &[(Digest, Vec<u8>)]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (key, value) in records {
        out.extend_from_slice(key.to_hex().as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

fn decode(mut bytes: &[u8]) -> std::result::Result<Vec<(Digest, Vec<u8>)>, String> {
    bytes = bytes
        .strip_prefix(MAGIC)
        .ok_or("not a memo segment (bad header)")?;
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let at = out.len();
        if bytes.len() < 68 {
            return Err(format!("record {at} is cut short"));
        }
        let key = std::str::from_utf8(&bytes[..64])
            .ok()
            .and_then(|k| k.parse::<Digest>().ok())
            .ok_or_else(|| format!("record {at} has no valid key"))?;
        let len = u32::from_le_bytes(bytes[64..68].try_into().expect("4 bytes")) as usize;
        let value = bytes
            .get(68..68 + len)
            .ok_or_else(|| format!("record {at} is cut short"))?;
        out.push((key, value.to_vec()));
        bytes = &bytes[68 + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_damage_is_named() {
        let records = vec![
            (Digest::of_bytes(b"a"), b"first".to_vec()),
            (Digest::of_bytes(b"b"), Vec::new()),
        ];
        let bytes = encode(&records);
        assert_eq!(decode(&bytes).unwrap(), records);
        let e = decode(&bytes[..bytes.len() - 2]).unwrap_err();
        assert!(e.contains("record 1 is cut short"), "{e}");
        assert!(decode(b"junk").unwrap_err().contains("bad header"));
    }
}
