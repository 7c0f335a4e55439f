//! `reasongen gc`: remove what no ref or key reaches. Dry run unless asked to delete.

use super::lock::abandoned_tmp;
use super::objects::remove_tree;
use super::{IoContext, Result, Store, disk_usage, read_dir_sorted};
use crate::digest::Digest;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default)]
pub struct GcOptions {
    /// Actually delete (otherwise only report).
    pub delete: bool,
    /// Keep only what refs reach: also drop key records (the run cache) of artifacts
    /// that no ref points to.
    pub refs_only: bool,
}

/// What gc removed, or would remove.
#[derive(Debug, Default)]
pub struct GcReport {
    pub kept_objects: usize,
    pub objects: Vec<(Digest, u64)>,
    pub keys: Vec<Digest>,
    pub tmp: Vec<(PathBuf, u64)>,
    pub lock_files: usize,
    pub deleted: bool,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|(_, b)| b).sum::<u64>()
            + self.tmp.iter().map(|(_, b)| b).sum::<u64>()
    }
}

impl Store {
    /// Collect garbage. The caller must hold the store lock exclusively, so no run is
    /// between publishing an artifact and recording its key.
    pub fn gc(&self, options: GcOptions) -> Result<GcReport> {
        let mut report = GcReport {
            deleted: options.delete,
            ..Default::default()
        };
        let refs = self.refs()?;
        let mut roots: BTreeSet<Digest> = refs.iter().map(|(_, _, r)| r.digest).collect();
        let ref_keys: BTreeSet<Digest> = refs.iter().map(|(_, _, r)| r.run_key).collect();
        for (run_key, rec) in self.keys()? {
            if options.refs_only && !ref_keys.contains(&run_key) && !roots.contains(&rec.digest) {
                report.keys.push(run_key);
            } else {
                roots.insert(rec.digest);
            }
        }
        for digest in self.objects()? {
            if roots.contains(&digest) {
                report.kept_objects += 1;
            } else {
                report
                    .objects
                    .push((digest, disk_usage(&self.object_dir(&digest))));
            }
        }
        for p in abandoned_tmp(self, Duration::ZERO)? {
            let size = disk_usage(&p);
            report.tmp.push((p, size));
        }
        // Checkpoints of runs whose artifact is published are left over.
        let done: BTreeSet<Digest> = self.keys()?.into_iter().map(|(k, _)| k).collect();
        for (key, p) in self.checkpointed()? {
            if done.contains(&key) {
                let size = disk_usage(&p);
                report.tmp.push((p, size));
            }
        }
        let lock_files = read_dir_sorted(&self.path("locks"))?;
        report.lock_files = lock_files.len();

        if options.delete {
            for run_key in &report.keys {
                let hex = run_key.to_hex();
                let p = self
                    .path("keys")
                    .join(&hex[..2])
                    .join(format!("{hex}.json"));
                std::fs::remove_file(&p).at(&p)?;
            }
            for (digest, _) in &report.objects {
                remove_tree(&self.object_dir(digest));
            }
            for (p, _) in &report.tmp {
                if p.is_dir() {
                    remove_tree(p);
                } else {
                    let _ = std::fs::remove_file(p);
                }
            }
            // No run holds a node lock while gc holds the store: the files are free.
            for p in lock_files {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(report)
    }
}
