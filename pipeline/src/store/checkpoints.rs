//! Checkpoints of node runs still in progress, as folders of files (a model's weights
//! and optimiser state can be many gigabytes: no database holds them):
//!
//! ```text
//! checkpoints/<run key>/step-<n>    the newest complete checkpoint, at step n
//! checkpoints/<run key>/work        files a run keeps across restarts beside it
//! checkpoints/<run key>/tmp-<n>     a checkpoint being written
//! ```
//!
//! A checkpoint is written into a `tmp-` folder and renamed into place, then the older
//! one is removed, so a kill at any moment leaves a whole checkpoint behind. A run of
//! the same node (same run key) resumes from it; the folder is removed once the node's
//! artifact is published, and `gc` removes those of keys that are done.

use super::{IoContext, Result, Store, read_dir_sorted};
use crate::digest::Digest;
use std::path::{Path, PathBuf};

/// The checkpoints of one node run (one run key).
#[derive(Clone, Debug)]
pub struct Checkpoints {
    root: PathBuf,
}

impl Store {
    /// The checkpoints of the node run `run_key`.
    pub fn checkpoints(&self, run_key: &Digest) -> Checkpoints {
        Checkpoints {
            root: self.path("checkpoints").join(run_key.to_hex()),
        }
    }

    /// Run keys that have checkpoint folders.
    pub(crate) fn checkpointed(&self) -> Result<Vec<(Digest, PathBuf)>> {
        Ok(read_dir_sorted(&self.path("checkpoints"))?
            .into_iter()
            .filter_map(|p| {
                let key = p.file_name()?.to_str()?.parse().ok()?;
                Some((key, p))
            })
            .collect())
    }
}

fn step_of(path: &Path, prefix: &str) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix(prefix)?
        .parse()
        .ok()
}

impl Checkpoints {
    /// The newest complete checkpoint: its step and folder.
    pub fn latest(&self) -> Result<Option<(u64, PathBuf)>> {
        if !self.root.exists() {
            return Ok(None);
        }
        Ok(read_dir_sorted(&self.root)?
            .into_iter()
            .filter_map(|p| step_of(&p, "step-").map(|s| (s, p)))
            .max_by_key(|(s, _)| *s))
    }

    /// Write the checkpoint of `step`: `write` fills a fresh folder, which then replaces
    /// the older checkpoints. An error from `write` leaves the older ones in place.
    pub fn save<E: From<super::StoreError>>(
        &self,
        step: u64,
        write: impl FnOnce(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<PathBuf, E> {
        let tmp = self.root.join(format!("tmp-{step}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).at(&tmp)?;
        }
        std::fs::create_dir_all(&tmp).at(&tmp)?;
        write(&tmp)?;
        let done = self.root.join(format!("step-{step}"));
        if done.exists() {
            std::fs::remove_dir_all(&done).at(&done)?;
        }
        std::fs::rename(&tmp, &done).at(&done)?;
        for p in read_dir_sorted(&self.root)? {
            let older =
                step_of(&p, "step-").is_some_and(|s| s != step) || step_of(&p, "tmp-").is_some();
            if older {
                std::fs::remove_dir_all(&p).at(&p)?;
            }
        }
        Ok(done)
    }

    /// A folder whose files survive restarts of the run (removed with the checkpoints).
    pub fn work_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("work");
        std::fs::create_dir_all(&dir).at(&dir)?;
        Ok(dir)
    }

    /// Remove every checkpoint of the run.
    pub fn clear(&self) -> Result<()> {
        if self.root.exists() {
            std::fs::remove_dir_all(&self.root).at(&self.root)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_whole_checkpoint_is_kept_and_a_failed_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let c = store.checkpoints(&Digest::of_bytes(b"run"));
        assert!(c.latest().unwrap().is_none());
        let write = |text: &'static str| {
            move |d: &Path| -> std::result::Result<(), super::super::StoreError> {
                std::fs::write(d.join("state"), text).at(d)
            }
        };
        c.save(10, write("ten")).unwrap();
        c.save(20, write("twenty")).unwrap();
        let (step, path) = c.latest().unwrap().unwrap();
        assert_eq!(step, 20);
        assert_eq!(
            std::fs::read_to_string(path.join("state")).unwrap(),
            "twenty"
        );
        assert!(!c.root.join("step-10").exists(), "the older one is gone");
        // A write that fails leaves step 20 as it was.
        let failed = c.save(
            30,
            |_: &Path| -> std::result::Result<(), super::super::StoreError> {
                Err(std::io::Error::other("disk full")).at(Path::new("x"))
            },
        );
        assert!(failed.is_err());
        assert_eq!(c.latest().unwrap().unwrap().0, 20);
        std::fs::write(c.work_dir().unwrap().join("rollouts"), "kept").unwrap();
        assert_eq!(store.checkpointed().unwrap().len(), 1);
        c.clear().unwrap();
        assert!(c.latest().unwrap().is_none() && store.checkpointed().unwrap().is_empty());
    }
}
