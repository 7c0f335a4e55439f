//! `reasongen verify`: re-hash every artifact and check every key and ref. Held files
//! (hard links and references to files outside the store) are re-hashed through the
//! link or reference, so a change made to them outside the store is found and named.

use super::held::REMEDY;
use super::objects::remove_tree;
use super::{IoContext, Result, Store, files_under};
use crate::digest::Digest;
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

/// Something wrong in the store.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// An artifact whose files do not match its manifest.
    CorruptObject {
        digest: Digest,
        file: Option<String>,
        message: String,
    },
    /// A key whose artifact is gone (the node will simply re-run).
    DanglingKey { run_key: Digest, digest: Digest },
    /// A ref whose artifact is gone.
    DanglingRef {
        recipe: String,
        node: String,
        digest: Digest,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::CorruptObject {
                digest,
                file: Some(file),
                message,
            } => write!(f, "corrupt object {digest}: {file}: {message}"),
            Problem::CorruptObject {
                digest, message, ..
            } => write!(f, "corrupt object {digest}: {message}"),
            Problem::DanglingKey { run_key, digest } => write!(
                f,
                "key {} points to missing object {digest}",
                run_key.short()
            ),
            Problem::DanglingRef {
                recipe,
                node,
                digest,
            } => write!(f, "ref {recipe}/{node} points to missing object {digest}"),
        }
    }
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub objects: usize,
    pub files: usize,
    pub bytes: u64,
    pub problems: Vec<Problem>,
}

impl Store {
    /// Re-hash every artifact file and check every key and ref, on all cores.
    pub fn verify(&self) -> Result<VerifyReport> {
        let objects = self.objects()?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = objects.len().div_ceil(threads).max(1);
        let parts: Vec<Result<VerifyReport>> = std::thread::scope(|s| {
            let handles: Vec<_> = objects
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        let mut report = VerifyReport::default();
                        for d in part {
                            self.verify_object(d, &mut report)?;
                        }
                        Ok(report)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("verify threads do not panic"))
                .collect()
        });
        let mut report = VerifyReport::default();
        for part in parts {
            let part = part?;
            report.objects += part.objects;
            report.files += part.files;
            report.bytes += part.bytes;
            report.problems.extend(part.problems);
        }
        for (run_key, rec) in self.keys()? {
            if !self.has_object(&rec.digest) {
                report.problems.push(Problem::DanglingKey {
                    run_key,
                    digest: rec.digest,
                });
            }
        }
        for (recipe, node, r) in self.refs()? {
            if !self.has_object(&r.digest) {
                report.problems.push(Problem::DanglingRef {
                    recipe,
                    node,
                    digest: r.digest,
                });
            }
        }
        Ok(report)
    }

    fn verify_object(&self, digest: &Digest, report: &mut VerifyReport) -> Result<()> {
        report.objects += 1;
        let dir = self.object_dir(digest);
        let corrupt = |file: Option<&str>, message: String| Problem::CorruptObject {
            digest: *digest,
            file: file.map(str::to_string),
            message,
        };
        let manifest = match self.manifest(digest) {
            Ok(m) => m,
            Err(e) => {
                report
                    .problems
                    .push(corrupt(Some("manifest.json"), e.to_string()));
                return Ok(());
            }
        };
        let recomputed = manifest.content.digest();
        if recomputed != *digest || manifest.digest != *digest {
            report.problems.push(corrupt(
                Some("manifest.json"),
                format!("manifest content hashes to {recomputed}, not to its name"),
            ));
        }
        let mut listed = BTreeSet::new();
        for entry in &manifest.content.files {
            listed.insert(entry.path.clone());
            let path = dir.join(&entry.path);
            report.files += 1;
            let problem = match Digest::of_file(&path) {
                Ok((sha, size)) => {
                    report.bytes += size;
                    if size != entry.size {
                        Some(format!("size {size}, manifest says {}", entry.size))
                    } else if sha != entry.sha256 {
                        Some(format!("sha256 {sha}, manifest says {}", entry.sha256))
                    } else {
                        None
                    }
                }
                Err(e) => Some(format!("unreadable: {e}")),
            };
            if let Some(mut message) = problem {
                // A held file changes outside the store: say where, and what to do.
                if let Some(h) = manifest.held.iter().find(|h| h.path == entry.path) {
                    message = format!(
                        "{message}; it is {}, changed outside the store: {REMEDY}",
                        h.describe()
                    );
                }
                report.problems.push(corrupt(Some(&entry.path), message));
            }
        }
        for path in files_under(&dir, false)? {
            let rel = path
                .strip_prefix(&dir)
                .expect("under dir")
                .to_string_lossy()
                .replace('\\', "/");
            if rel != "manifest.json" && !listed.contains(&rel) {
                report.problems.push(corrupt(
                    Some(&rel),
                    "file not listed in the manifest".into(),
                ));
            }
        }
        Ok(())
    }

    /// Move corrupt artifacts to `quarantine/` and drop the keys and refs that point to
    /// missing or quarantined artifacts, so the next run rebuilds them. Needs the store
    /// lock held exclusively. Returns the quarantined folders.
    pub fn repair(&self, problems: &[Problem]) -> Result<Vec<PathBuf>> {
        let mut moved = Vec::new();
        let corrupt: BTreeSet<Digest> = problems
            .iter()
            .filter_map(|p| match p {
                Problem::CorruptObject { digest, .. } => Some(*digest),
                _ => None,
            })
            .collect();
        let quarantine = self.path("quarantine");
        for digest in &corrupt {
            std::fs::create_dir_all(&quarantine).at(&quarantine)?;
            let to = quarantine.join(digest.to_hex());
            remove_tree(&to);
            let from = self.object_dir(digest);
            std::fs::rename(&from, &to).at(&from)?;
            moved.push(to);
        }
        for (run_key, rec) in self.keys()? {
            if !self.has_object(&rec.digest) {
                let hex = run_key.to_hex();
                let p = self
                    .path("keys")
                    .join(&hex[..2])
                    .join(format!("{hex}.json"));
                std::fs::remove_file(&p).at(&p)?;
            }
        }
        for (recipe, node, r) in self.refs()? {
            if !self.has_object(&r.digest) {
                self.remove_ref(&recipe, &node)?;
            }
        }
        Ok(moved)
    }
}
