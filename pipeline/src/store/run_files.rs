//! A run's files that other processes of the run read — node descriptions, per-node
//! event files — under `runs/<run id>/`: in the store's folder on a local store, and on
//! S3 in the bucket as well, so that a process on another machine (a Slurm job without
//! a shared filesystem) sees them. The local run folder is always the working copy; what
//! the files mean is the executor's business.

use super::{IoContext, Result, Store, write_atomic};
use bytes::Bytes;
use object_store::PutMode;
use std::path::PathBuf;

impl Store {
    /// Where the run file `name` (a `/`-separated path) of run `run_id` lives locally.
    pub fn run_file_path(&self, run_id: &str, name: &str) -> PathBuf {
        self.run_dir(run_id).join(name)
    }

    /// Write the run file `name` of run `run_id` whole (replacing it), locally and, on
    /// S3, in the bucket.
    pub fn put_run_file(&self, run_id: &str, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.run_file_path(run_id, name), bytes)?;
        self.share_run_file(run_id, name)
    }

    /// Make the local copy of the run file `name` (one this process appends to) what
    /// other machines read: on S3 it is uploaded whole; a local store shares its folder.
    pub fn share_run_file(&self, run_id: &str, name: &str) -> Result<()> {
        let Some(remote) = self.remote() else {
            return Ok(());
        };
        let path = self.run_file_path(run_id, name);
        let bytes = std::fs::read(&path).at(&path)?;
        remote.put(
            &remote_run_file(run_id, name),
            Bytes::from(bytes),
            PutMode::Overwrite,
        )?;
        Ok(())
    }

    /// The local copy of the run file `name`, to append to and then share: on S3 it
    /// first becomes the bucket's copy (what earlier writers, perhaps on other machines,
    /// shared), so appending continues it.
    pub fn continue_run_file(&self, run_id: &str, name: &str) -> Result<PathBuf> {
        let path = self.run_file_path(run_id, name);
        if let Some(remote) = self.remote()
            && let Some((bytes, _)) = remote.get(&remote_run_file(run_id, name))?
        {
            write_atomic(&path, &bytes)?;
        }
        Ok(path)
    }

    /// The run file `name` of run `run_id` as other processes last shared it (on S3 the
    /// bucket's copy, else the local file); `None` if there is none.
    pub fn get_run_file(&self, run_id: &str, name: &str) -> Result<Option<Vec<u8>>> {
        if let Some(remote) = self.remote() {
            return Ok(remote
                .get(&remote_run_file(run_id, name))?
                .map(|(bytes, _)| bytes.to_vec()));
        }
        let path = self.run_file_path(run_id, name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(&path),
        }
    }
}

fn remote_run_file(run_id: &str, name: &str) -> String {
    format!("runs/{run_id}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_file_reads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get_run_file("r1", "nodes/a.json").unwrap(), None);
        store.put_run_file("r1", "nodes/a.json", b"{}").unwrap();
        assert_eq!(
            store.get_run_file("r1", "nodes/a.json").unwrap().as_deref(),
            Some(&b"{}"[..])
        );
        assert!(store.run_file_path("r1", "nodes/a.json").is_file());
        assert_eq!(store.get_run_file("r2", "nodes/a.json").unwrap(), None);
    }
}
