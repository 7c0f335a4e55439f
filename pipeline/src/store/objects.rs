//! Publishing artifacts: hash the files a stage wrote, write the manifest, and rename
//! the folder into `objects/` in one step. Held files ([`super::held`]) are checked and
//! take the digest they were held with, and are neither re-hashed nor made read-only.
//!
//! On S3 the artifact is published into the local cache first, then uploaded file by
//! file, each re-hashed against the manifest just before it goes, and its manifest
//! last: an upload killed at any point leaves no manifest, so nothing half-published
//! is ever read. Reading an artifact that is not in the cache downloads it the same
//! way round (files into a private folder, renamed into the cache when complete).

use super::{
    HeldFile, IoContext, Result, Store, StoreError, files_under, json_bytes, remote_manifest,
    sync_dir,
};
use crate::artifact::{Content, FileEntry, Lineage, Manifest};
use crate::digest::Digest;
use crate::faults::fault_point_for;
use crate::stage::Output;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

impl Store {
    /// Publish the folder `dir` (written by a stage under `tmp/`) as an artifact of
    /// `kind`, `held` being the files in it that the stage held rather than wrote. If
    /// an artifact with the same content already exists, `dir` is removed and the
    /// existing one is returned: identical content has one identity. (An existing one
    /// whose held files changed or went away is replaced.)
    pub fn publish(
        &self,
        dir: &Path,
        kind: crate::artifact::ArtifactKind,
        output: &Output,
        lineage: Lineage,
        held: &[HeldFile],
    ) -> Result<Manifest> {
        if dir.join("manifest.json").exists() {
            return Err(StoreError::Corrupt {
                path: dir.join("manifest.json"),
                message: "a stage may not write `manifest.json` at the top of its output".into(),
            });
        }
        for h in held {
            h.check(dir).map_err(|message| StoreError::Corrupt {
                path: dir.join(&h.path),
                message,
            })?;
        }
        let held_paths: BTreeSet<&str> = held.iter().map(|h| h.path.as_str()).collect();
        let paths: Vec<PathBuf> = files_under(dir, false)?
            .into_iter()
            .filter(|p| !held_paths.contains(relative(dir, p).as_str()))
            .collect();
        let mut files = hash_files(dir, &paths)?;
        files.extend(held.iter().map(|h| FileEntry {
            path: h.path.clone(),
            sha256: h.sha256,
            size: h.size,
        }));
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut held = held.to_vec();
        held.sort_by(|a, b| a.path.cmp(&b.path));
        let content = Content {
            kind,
            schema: output.schema.clone(),
            rows: output.rows,
            files,
            meta: output.meta.clone(),
        };
        let digest = content.digest();
        let manifest = Manifest {
            digest,
            content,
            lineage,
            held,
        };
        let mut bytes = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
        bytes.push(b'\n');
        let manifest_path = dir.join("manifest.json");
        std::fs::write(&manifest_path, &bytes).at(&manifest_path)?;
        for p in paths.iter().chain(std::iter::once(&manifest_path)) {
            seal(p)?;
        }
        sync_dir(dir);
        fault_point_for("publish.before_rename", &manifest.lineage.node);

        let published = self.publish_local(dir, manifest)?;
        if self.remote().is_some() {
            self.upload_object(&published)?;
        }
        Ok(published)
    }

    /// Rename the sealed folder `dir` into the local `objects/`.
    fn publish_local(&self, dir: &Path, manifest: Manifest) -> Result<Manifest> {
        let digest = manifest.digest;
        let target = self.object_dir(&digest);
        if self.cached(&digest) {
            if self.held_intact(&digest)? {
                remove_tree(dir);
                return self.manifest(&digest);
            }
            // Its held files changed or went away: this one takes its place.
            let stale = dir.with_extension("stale");
            std::fs::rename(&target, &stale).at(&target)?;
            remove_tree(&stale);
        }
        let parent = target.parent().expect("object dirs have parents");
        std::fs::create_dir_all(parent).at(parent)?;
        match std::fs::rename(dir, &target) {
            Ok(()) => {
                sync_dir(parent);
                Ok(manifest)
            }
            // Another run published the same content first.
            Err(_) if self.cached(&digest) => {
                remove_tree(dir);
                self.manifest(&digest)
            }
            Err(e) => Err(e).at(&target),
        }
    }
}

impl Store {
    /// Upload the cached artifact of `manifest` to the bucket, manifest last. Nothing
    /// is sent if the bucket has it already.
    fn upload_object(&self, manifest: &Manifest) -> Result<()> {
        let remote = self.remote().expect("called for S3 stores");
        let digest = manifest.digest;
        if remote.head(&remote_manifest(&digest))?.is_some() {
            return Ok(());
        }
        let dir = self.object_dir(&digest);
        let hex = digest.to_hex();
        for (i, entry) in manifest.content.files.iter().enumerate() {
            let path = dir.join(&entry.path);
            let (sha256, size) = Digest::of_file(&path).at(&path)?;
            if (sha256, size) != (entry.sha256, entry.size) {
                return Err(StoreError::Corrupt {
                    path,
                    message: format!(
                        "changed since it was published (sha256 {sha256}, {size} bytes; the manifest says {}, {} bytes); not uploaded",
                        entry.sha256, entry.size
                    ),
                });
            }
            remote.upload(&path, &format!("objects/{hex}/{}", entry.path))?;
            if i == 0 {
                fault_point_for("publish.upload", &manifest.lineage.node);
            }
        }
        // The commit point. A manifest there already is the same artifact's.
        remote.put(
            &remote_manifest(&digest),
            json_bytes(manifest).into(),
            object_store::PutMode::Create,
        )?;
        Ok(())
    }

    /// Bring the artifact `digest` from the bucket into the local cache.
    pub(crate) fn fetch_object(&self, digest: &Digest) -> Result<()> {
        let remote = self.remote().expect("called for S3 stores");
        let hex = digest.to_hex();
        let Some((bytes, _)) = remote.get(&remote_manifest(digest))? else {
            return Err(StoreError::NotFound(hex));
        };
        let manifest: Manifest =
            super::parse_json(&remote.url(), &remote_manifest(digest), &bytes)?;
        let staging = self
            .path("tmp")
            .join(format!("fetch-{hex}-{}", super::memo_log::unique_id()));
        let fetched = (|| {
            for entry in &manifest.content.files {
                let to = staging.join(&entry.path);
                remote.download(&format!("objects/{hex}/{}", entry.path), &to)?;
                let (sha256, size) = Digest::of_file(&to).at(&to)?;
                if (sha256, size) != (entry.sha256, entry.size) {
                    return Err(StoreError::Corrupt {
                        path: PathBuf::from(format!(
                            "{}/objects/{hex}/{}",
                            remote.url(),
                            entry.path
                        )),
                        message: format!(
                            "sha256 {sha256}, {size} bytes; the manifest says {}, {} bytes",
                            entry.sha256, entry.size
                        ),
                    });
                }
                // A held file keeps the mtime it was held with, for its quick check.
                if let Some(h) = manifest.held.iter().find(|h| h.path == entry.path) {
                    let when = std::time::UNIX_EPOCH
                        + std::time::Duration::from_nanos(h.mtime_ns.max(0) as u64);
                    let f = std::fs::File::options().write(true).open(&to).at(&to)?;
                    f.set_modified(when).at(&to)?;
                } else {
                    seal(&to)?;
                }
            }
            let m = staging.join("manifest.json");
            std::fs::write(&m, &bytes).at(&m)?;
            seal(&m)
        })();
        if let Err(e) = fetched {
            remove_tree(&staging);
            return Err(e);
        }
        let target = self.object_dir(digest);
        let parent = target.parent().expect("object dirs have parents");
        std::fs::create_dir_all(parent).at(parent)?;
        match std::fs::rename(&staging, &target) {
            Ok(()) => Ok(()),
            // Fetched by another process meanwhile.
            Err(_) if self.cached(digest) => {
                remove_tree(&staging);
                Ok(())
            }
            Err(e) => {
                remove_tree(&staging);
                Err(e).at(&target)
            }
        }
    }
}

/// Hash every file, in parallel across the machine's cores.
fn hash_files(dir: &Path, paths: &[std::path::PathBuf]) -> Result<Vec<FileEntry>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = paths.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<FileEntry>>> = std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| {
                            let (sha256, size) = Digest::of_file(p).at(p)?;
                            Ok(FileEntry {
                                path: relative(dir, p),
                                sha256,
                                size,
                            })
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("hashing threads do not panic"))
            .collect()
    });
    let mut files = Vec::with_capacity(paths.len());
    for r in results {
        files.extend(r?);
    }
    Ok(files)
}

/// The path of `path` in the artifact folder `dir`, with forward slashes.
pub(super) fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir)
        .expect("under dir")
        .to_string_lossy()
        .replace('\\', "/")
}

impl Store {
    /// Whether every held file of artifact `digest` passes its quick check.
    fn held_intact(&self, digest: &Digest) -> Result<bool> {
        let dir = self.object_dir(digest);
        Ok(self
            .manifest(digest)?
            .held
            .iter()
            .all(|h| h.check(&dir).is_ok()))
    }

    /// The quick check of every held file of artifact `digest` before a stage reads
    /// it: an error names the first file that changed or went away and what to do.
    pub fn check_held(&self, manifest: &Manifest) -> Result<()> {
        let dir = self.object_dir(&manifest.digest);
        for h in &manifest.held {
            h.check(&dir).map_err(|message| StoreError::Corrupt {
                path: dir.join(&h.path),
                message,
            })?;
        }
        Ok(())
    }
}

/// Make a published file durable and read-only.
fn seal(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).at(path)?;
    f.sync_all().at(path)?;
    let mut perms = f.metadata().at(path)?.permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(path, perms).at(path)
}

/// Remove a folder tree, ignoring errors (it is garbage either way).
pub(crate) fn remove_tree(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
}
