//! Publishing artifacts: hash the files a stage wrote, write the manifest, and rename
//! the folder into `objects/` in one step.

use super::{IoContext, Result, Store, StoreError, files_under, sync_dir};
use crate::artifact::{Content, FileEntry, Lineage, Manifest};
use crate::digest::Digest;
use crate::faults::fault_point_for;
use crate::stage::Output;
use std::path::Path;

impl Store {
    /// Publish the folder `dir` (written by a stage under `tmp/`) as an artifact of
    /// `kind`. If an artifact with the same content already exists, `dir` is removed
    /// and the existing one is returned: identical content has one identity.
    pub fn publish(
        &self,
        dir: &Path,
        kind: crate::artifact::ArtifactKind,
        output: &Output,
        lineage: Lineage,
    ) -> Result<Manifest> {
        if dir.join("manifest.json").exists() {
            return Err(StoreError::Corrupt {
                path: dir.join("manifest.json"),
                message: "a stage may not write `manifest.json` at the top of its output".into(),
            });
        }
        let paths = files_under(dir, false)?;
        let files = hash_files(dir, &paths)?;
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

        let target = self.object_dir(&digest);
        if self.has_object(&digest) {
            remove_tree(dir);
            return self.manifest(&digest);
        }
        let parent = target.parent().expect("object dirs have parents");
        std::fs::create_dir_all(parent).at(parent)?;
        match std::fs::rename(dir, &target) {
            Ok(()) => {
                sync_dir(parent);
                Ok(manifest)
            }
            // Another run published the same content first.
            Err(_) if self.has_object(&digest) => {
                remove_tree(dir);
                self.manifest(&digest)
            }
            Err(e) => Err(e).at(&target),
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
                            let rel = p.strip_prefix(dir).expect("under dir");
                            Ok(FileEntry {
                                path: rel.to_string_lossy().replace('\\', "/"),
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
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
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
