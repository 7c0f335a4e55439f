//! Node leases: the lock held while one run computes a run key, so that a second run
//! (on this machine or another) waits and then finds the artifact instead of computing
//! it twice.
//!
//! `flock` does not work across machines on NFS or Lustre, and S3 has no locks at
//! all, so this is one mechanism for both backends, built on create-exclusive and
//! nothing else: the lease of a run key is a folder (`locks/<run key>/`, a prefix on
//! S3) of generation files `gen-<n>`, each holding its owner and an expiry time.
//!
//! - **Take**: find the highest generation `n`. If it is live (not expired), someone
//!   holds the lease. Otherwise (none, or expired) create `gen-<n+1>` exclusively (a
//!   hard link of a finished file on a filesystem, `If-None-Match: *` on S3): of
//!   several takers exactly one succeeds. A winner that then sees a live higher
//!   generation (possible only after a release raced a steal) backs off.
//! - **Hold**: a heartbeat thread rewrites the holder's own file with a new expiry
//!   every third of the time to live; nobody else ever writes that file.
//! - **Release**: stop the heartbeat and delete the file. A holder that is killed
//!   stops renewing, and its lease is taken over once it expires: stolen only when
//!   expired. One shortcut: a lease whose holder ran on this very host (same host
//!   name) and whose process is gone (no such pid, or one started at another time)
//!   counts as expired at once, so a run after a `kill -9` on one machine does not
//!   wait out the time to live.
//!
//! Expiry is compared with the reader's wall clock, so machines' clocks must agree to
//! well within the time to live (30 s by default; NTP keeps them to milliseconds).
//! Stale generation files of dead holders stay until `gc`.

use super::remote::{Put, Remote};
use super::{IoContext, Result, Store, StoreError, write_atomic};
use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The contents of a generation file.
#[derive(Clone, Serialize, Deserialize)]
struct Lease {
    host: String,
    pid: u32,
    /// The holder process's start time (clock ticks after boot), against pid reuse.
    started: u64,
    expires_ms: u64,
}

impl Lease {
    /// A lease held by this process, valid for `ttl` from now.
    fn mine(ttl: Duration) -> Lease {
        let pid = std::process::id();
        Lease {
            host: host(),
            pid,
            started: process_start(pid).unwrap_or(0),
            expires_ms: now_ms() + ttl.as_millis() as u64,
        }
    }

    /// Not expired, and its holder not known to be dead.
    fn live(&self, now: u64) -> bool {
        let died_here = self.host == host() && process_start(self.pid) != Some(self.started);
        self.expires_ms > now && !died_here
    }
}

fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// When process `pid` started (field 22 of `/proc/<pid>/stat`), if it exists.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a lease's generation files live.
#[derive(Clone)]
enum Place {
    Folder(PathBuf),
    Bucket(Remote, String),
}

impl Place {
    fn of(store: &Store, run_key: &Digest) -> Place {
        let rel = format!("locks/{}", run_key.to_hex());
        match store.remote() {
            Some(r) => Place::Bucket(r.clone(), rel),
            None => Place::Folder(store.path(&rel)),
        }
    }

    /// The generation numbers present, highest last.
    fn generations(&self) -> Result<Vec<u64>> {
        let names: Vec<String> = match self {
            Place::Folder(dir) => super::read_dir_sorted(dir)?
                .iter()
                .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
                .collect(),
            Place::Bucket(r, rel) => r
                .list(rel)?
                .into_iter()
                .filter_map(|(n, _)| n.rsplit('/').next().map(str::to_string))
                .collect(),
        };
        let mut gens: Vec<u64> = names
            .iter()
            .filter_map(|n| n.strip_prefix("gen-")?.parse().ok())
            .collect();
        gens.sort_unstable();
        Ok(gens)
    }

    /// The lease of generation `n`, if its file exists. A file that cannot be parsed
    /// (being written by a filesystem that shows partial files) counts as live.
    fn read(&self, n: u64) -> Result<Option<Lease>> {
        let bytes = match self {
            Place::Folder(dir) => match std::fs::read(dir.join(format!("gen-{n}"))) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).at(dir),
            },
            Place::Bucket(r, rel) => match r.get(&format!("{rel}/gen-{n}"))? {
                Some((b, _)) => b.to_vec(),
                None => return Ok(None),
            },
        };
        Ok(Some(serde_json::from_slice(&bytes).unwrap_or(Lease {
            host: String::new(),
            pid: 0,
            started: 0,
            expires_ms: u64::MAX,
        })))
    }

    /// Create generation `n` unless it exists; whether this call created it.
    fn create(&self, n: u64, lease: &Lease) -> Result<bool> {
        let bytes = serde_json::to_vec(lease).expect("leases serialise");
        match self {
            Place::Folder(dir) => {
                std::fs::create_dir_all(dir).at(dir)?;
                // Written whole under a private name, then linked: the link is the
                // atomic create-exclusive (also on NFS), and nobody sees a partial file.
                let tmp = dir.join(format!(".gen-{n}.{}", super::memo_log::unique_id()));
                std::fs::write(&tmp, &bytes).at(&tmp)?;
                let target = dir.join(format!("gen-{n}"));
                let linked = std::fs::hard_link(&tmp, &target);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e).at(&target),
                }
            }
            Place::Bucket(r, rel) => Ok(matches!(
                r.put(
                    &format!("{rel}/gen-{n}"),
                    bytes.into(),
                    object_store::PutMode::Create
                )?,
                Put::Done
            )),
        }
    }

    /// Rewrite generation `n` (only its holder does this).
    fn renew(&self, n: u64, lease: &Lease) -> Result<()> {
        let bytes = serde_json::to_vec(lease).expect("leases serialise");
        match self {
            Place::Folder(dir) => write_atomic(&dir.join(format!("gen-{n}")), &bytes),
            Place::Bucket(r, rel) => r
                .put(
                    &format!("{rel}/gen-{n}"),
                    bytes.into(),
                    object_store::PutMode::Overwrite,
                )
                .map(|_| ()),
        }
    }

    fn remove(&self, n: u64) -> Result<()> {
        match self {
            Place::Folder(dir) => {
                let p = dir.join(format!("gen-{n}"));
                match std::fs::remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(StoreError::Io { path: p, source: e })
                    }
                    _ => Ok(()),
                }
            }
            Place::Bucket(r, rel) => r.delete(&format!("{rel}/gen-{n}")),
        }
    }
}

/// Held while a run key is being computed; released when dropped.
pub struct NodeLock {
    place: Place,
    generation: u64,
    /// Dropping it stops the heartbeat.
    stop: Option<mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

impl NodeLock {
    /// Take the lease without waiting; `None` if a live holder has it.
    pub fn try_acquire(store: &Store, run_key: &Digest) -> Result<Option<NodeLock>> {
        let place = Place::of(store, run_key);
        let ttl = store.options().lease_ttl;
        loop {
            let top = place.generations()?.last().copied().unwrap_or(0);
            if top > 0 {
                match place.read(top)? {
                    // Released meanwhile: look again.
                    None => continue,
                    Some(l) if l.live(now_ms()) => return Ok(None),
                    Some(_) => {}
                }
            }
            let n = top + 1;
            let lease = Lease::mine(ttl);
            if !place.create(n, &lease)? {
                continue;
            }
            for higher in place.generations()?.into_iter().filter(|&g| g > n) {
                if place.read(higher)?.is_some_and(|l| l.live(now_ms())) {
                    place.remove(n)?;
                    return Ok(None);
                }
            }
            return Ok(Some(Self::hold(place, n, lease, ttl)));
        }
    }

    /// Take the lease, waiting as long as needed (call from a blocking thread).
    pub fn acquire(store: &Store, run_key: &Digest) -> Result<NodeLock> {
        // Each look at a bucket is a LIST and a GET: look less often there.
        let pause = match store.remote() {
            Some(_) => Duration::from_secs(1),
            None => Duration::from_millis(250),
        };
        loop {
            if let Some(lock) = Self::try_acquire(store, run_key)? {
                return Ok(lock);
            }
            std::thread::sleep(pause);
        }
    }

    /// Start the heartbeat of a lease just taken.
    fn hold(place: Place, generation: u64, lease: Lease, ttl: Duration) -> NodeLock {
        let (stop, stopped) = mpsc::channel::<()>();
        let beat = place.clone();
        let heartbeat = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(ttl / 3) {
                let lease = Lease {
                    expires_ms: now_ms() + ttl.as_millis() as u64,
                    ..lease.clone()
                };
                if let Err(e) = beat.renew(generation, &lease) {
                    eprintln!("warning: cannot renew a node lease: {e}");
                }
            }
        });
        NodeLock {
            place,
            generation,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
        }
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        let _ = self.place.remove(self.generation);
    }
}

/// Generation files whose leases have expired, as paths or bucket names, for `gc` to
/// remove (locally also the `flock` files of stores from before leases).
pub(crate) fn expired_leases(store: &Store) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let now = now_ms();
    let expired = |place: &Place, n: u64| -> Result<bool> {
        Ok(place.read(n)?.is_some_and(|l| !l.live(now)))
    };
    match store.remote() {
        Some(r) => {
            for (rel, _) in r.list("locks")? {
                let Some((dir, file)) = rel.rsplit_once('/') else {
                    continue;
                };
                let Some(n) = file.strip_prefix("gen-").and_then(|g| g.parse().ok()) else {
                    continue;
                };
                if expired(&Place::Bucket(r.clone(), dir.to_string()), n)? {
                    out.push(rel);
                }
            }
        }
        None => {
            for dir in super::read_dir_sorted(&store.path("locks"))? {
                if !dir.is_dir() {
                    out.push(dir.display().to_string());
                    continue;
                }
                let place = Place::Folder(dir.clone());
                for n in place.generations()? {
                    if expired(&place, n)? {
                        out.push(dir.join(format!("gen-{n}")).display().to_string());
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lease_blocks_and_an_expired_or_dead_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = Digest::of_bytes(b"node");
        let first = NodeLock::try_acquire(&store, &key).unwrap().unwrap();
        assert!(NodeLock::try_acquire(&store, &key).unwrap().is_none());
        drop(first);
        let again = NodeLock::try_acquire(&store, &key).unwrap().unwrap();
        assert_eq!(again.generation, 1, "a release frees the generation");
        drop(again);

        // A holder on another host: live until its expiry, then taken over.
        let place = Place::of(&store, &key);
        let elsewhere = Lease {
            host: "elsewhere".into(),
            pid: 1,
            started: 0,
            expires_ms: now_ms() + 60_000,
        };
        place.renew(1, &elsewhere).unwrap();
        assert!(NodeLock::try_acquire(&store, &key).unwrap().is_none());
        assert!(expired_leases(&store).unwrap().is_empty());
        let expired = Lease {
            expires_ms: now_ms() - 1,
            ..elsewhere
        };
        place.renew(1, &expired).unwrap();
        assert_eq!(expired_leases(&store).unwrap().len(), 1);
        let stolen = NodeLock::try_acquire(&store, &key).unwrap().unwrap();
        assert_eq!(stolen.generation, 2);
        assert!(NodeLock::try_acquire(&store, &key).unwrap().is_none());

        // A holder on this host whose process is gone: taken over before its expiry.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let other = Digest::of_bytes(b"other node");
        let dead = Lease {
            pid,
            ..Lease::mine(Duration::from_secs(60))
        };
        Place::of(&store, &other).renew(1, &dead).unwrap();
        assert!(NodeLock::try_acquire(&store, &other).unwrap().is_some());
    }
}
