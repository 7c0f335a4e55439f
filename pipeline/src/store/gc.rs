//! `reasongen gc`: remove what no ref or key reaches. Dry run unless asked to delete.
//! On S3 it works on the bucket, sparing objects younger than the grace period (there
//! is no store-wide lock to keep runs out; see the store's module doc); the local
//! cache's leftovers and checkpoints are collected as on a local store.

use super::lease::expired_leases;
use super::lock::abandoned_tmp;
use super::objects::remove_tree;
use super::{IoContext, Result, Store, disk_usage, remote_key, remote_manifest, remote_objects};
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
        // Unfinished uploads in the bucket: (digest, its files).
        let mut partial: Vec<(Digest, Vec<String>)> = Vec::new();
        let mut tmp_age = Duration::ZERO;
        if let Some(remote) = self.remote() {
            tmp_age = self.options().grace;
            for o in remote_objects(remote)? {
                let size = o.files.iter().map(|(_, m)| m.size).sum();
                match &o.manifest {
                    None if o.files.iter().all(|(_, m)| self.past_grace(m)) => {
                        let at = format!("{}/objects/{}/", remote.url(), o.digest.to_hex());
                        report.tmp.push((PathBuf::from(at), size));
                        partial.push((o.digest, o.files.into_iter().map(|(f, _)| f).collect()));
                    }
                    Some(m) if !roots.contains(&o.digest) && self.past_grace(m) => {
                        report.objects.push((o.digest, size));
                    }
                    Some(_) => report.kept_objects += 1,
                    None => {}
                }
            }
        } else {
            for digest in self.objects()? {
                if roots.contains(&digest) {
                    report.kept_objects += 1;
                } else {
                    report
                        .objects
                        .push((digest, disk_usage(&self.object_dir(&digest))));
                }
            }
        }
        for p in abandoned_tmp(self, tmp_age)? {
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
        let lock_files = expired_leases(self)?;
        report.lock_files = lock_files.len();

        if options.delete {
            self.delete_remote(&report, &partial, &lock_files)?;
        }
        if options.delete && self.remote().is_none() {
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
            for p in &lock_files {
                let p = std::path::Path::new(p);
                let _ = std::fs::remove_file(p);
                // The run key's folder, once its last generation file is gone.
                if let Some(dir) = p.parent().filter(|d| *d != self.path("locks")) {
                    let _ = std::fs::remove_dir(dir);
                }
            }
        }
        if options.delete {
            // The local folder's leftovers (on S3, the cache's).
            for (p, _) in &report.tmp {
                if p.is_dir() {
                    remove_tree(p);
                } else if p.is_file() {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        Ok(report)
    }

    /// The bucket's part of a gc that deletes: keys, objects (manifest first, so an
    /// object is never half there and still published), unfinished uploads and the
    /// files of expired leases.
    fn delete_remote(
        &self,
        report: &GcReport,
        partial: &[(Digest, Vec<String>)],
        lock_files: &[String],
    ) -> Result<()> {
        let Some(remote) = self.remote() else {
            return Ok(());
        };
        for run_key in &report.keys {
            remote.delete(&remote_key(run_key))?;
        }
        for (digest, _) in &report.objects {
            let hex = digest.to_hex();
            remote.delete(&remote_manifest(digest))?;
            for (rel, _) in remote.list(&format!("objects/{hex}"))? {
                remote.delete(&rel)?;
            }
            remove_tree(&self.object_dir(digest));
        }
        for (digest, files) in partial {
            for f in files {
                remote.delete(&format!("objects/{}/{f}", digest.to_hex()))?;
            }
        }
        for rel in lock_files {
            remote.delete(rel)?;
        }
        Ok(())
    }
}
