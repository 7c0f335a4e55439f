//! `reasongen verify`: re-hash every artifact and check every key and ref. Held files
//! (hard links and references to files outside the store) are re-hashed through the
//! link or reference, so a change made to them outside the store is found and named.
//! On S3 the objects in the bucket are checked (read, not the cache), and unfinished
//! uploads older than the grace period are reported as stale.

use super::held::REMEDY;
use super::lock::abandoned_tmp;
use super::objects::relative;
use super::objects::remove_tree;
use super::{IoContext, Result, Store, files_under, remote_key, remote_objects};
use crate::artifact::Manifest;
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
    /// Unfinished work older than the grace period: a killed run's folder under `tmp/`,
    /// or on S3 an artifact's files uploaded without their manifest.
    StaleTmp { at: String },
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
            Problem::StaleTmp { at } => write!(f, "stale unfinished work: {at}"),
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
        let mut report = match self.remote() {
            None => {
                let objects = self.objects()?;
                in_parallel(&objects, |d, report| {
                    let dir = self.object_dir(d);
                    let present = files_under(&dir, false)?
                        .iter()
                        .map(|p| relative(&dir, p))
                        .collect();
                    verify_object(d, self.manifest(d), present, report, |rel| {
                        Digest::of_file(&dir.join(rel)).map_err(|e| e.to_string())
                    });
                    Ok(())
                })?
            }
            Some(remote) => {
                let objects = remote_objects(remote)?;
                let (complete, partial): (Vec<_>, Vec<_>) =
                    objects.into_iter().partition(|o| o.manifest.is_some());
                let mut report = in_parallel(&complete, |o, report| {
                    let hex = o.digest.to_hex();
                    let bytes = |rel: &str| -> std::result::Result<bytes::Bytes, String> {
                        match remote.get(&format!("objects/{hex}/{rel}")) {
                            Ok(Some((b, _))) => Ok(b),
                            Ok(None) => Err("missing".into()),
                            Err(e) => Err(e.to_string()),
                        }
                    };
                    let manifest = bytes("manifest.json")
                        .map_err(|message| super::StoreError::Corrupt {
                            path: "manifest.json".into(),
                            message,
                        })
                        .and_then(|b| {
                            super::parse_json::<Manifest>(&remote.url(), "manifest.json", &b)
                        });
                    let present = o.files.iter().map(|(f, _)| f.clone()).collect();
                    verify_object(&o.digest, manifest, present, report, |rel| {
                        bytes(rel).map(|b| (Digest::of_bytes(&b), b.len() as u64))
                    });
                    Ok(())
                })?;
                for o in partial {
                    if o.files.iter().all(|(_, m)| self.past_grace(m)) {
                        report.problems.push(Problem::StaleTmp {
                            at: format!(
                                "{}/objects/{}/ ({} files, no manifest)",
                                remote.url(),
                                o.digest.to_hex(),
                                o.files.len()
                            ),
                        });
                    }
                }
                report
            }
        };
        for p in abandoned_tmp(self, self.options().grace)? {
            report.problems.push(Problem::StaleTmp {
                at: p.display().to_string(),
            });
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
        if let Some(remote) = self.remote() {
            for digest in &corrupt {
                let hex = digest.to_hex();
                let files = remote.list(&format!("objects/{hex}"))?;
                // Unpublish first: without its manifest nobody reads the rest.
                remote.delete(&super::remote_manifest(digest))?;
                for (rel, _) in files {
                    let to = rel.replacen("objects/", "quarantine/", 1);
                    remote.copy(&rel, &to)?;
                    remote.delete(&rel)?;
                }
                moved.push(PathBuf::from(format!("{}/quarantine/{hex}", remote.url())));
            }
        }
        let quarantine = self.path("quarantine");
        for digest in corrupt.iter().filter(|_| self.remote().is_none()) {
            std::fs::create_dir_all(&quarantine).at(&quarantine)?;
            let to = quarantine.join(digest.to_hex());
            remove_tree(&to);
            let from = self.object_dir(digest);
            std::fs::rename(&from, &to).at(&from)?;
            moved.push(to);
        }
        for (run_key, rec) in self.keys()? {
            if !self.has_object(&rec.digest) {
                if let Some(remote) = self.remote() {
                    remote.delete(&remote_key(&run_key))?;
                    continue;
                }
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

/// Check one artifact: its manifest (as read), the files `present` in its folder, and
/// each listed file's hash and size through `hash`.
fn verify_object(
    digest: &Digest,
    manifest: Result<Manifest>,
    present: Vec<String>,
    report: &mut VerifyReport,
    hash: impl Fn(&str) -> std::result::Result<(Digest, u64), String>,
) {
    report.objects += 1;
    let corrupt = |file: Option<&str>, message: String| Problem::CorruptObject {
        digest: *digest,
        file: file.map(str::to_string),
        message,
    };
    let manifest = match manifest {
        Ok(m) => m,
        Err(e) => {
            report
                .problems
                .push(corrupt(Some("manifest.json"), e.to_string()));
            return;
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
        report.files += 1;
        let problem = match hash(&entry.path) {
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
    for rel in present {
        if rel != "manifest.json" && !listed.contains(&rel) {
            report.problems.push(corrupt(
                Some(&rel),
                "file not listed in the manifest".into(),
            ));
        }
    }
}

/// Run `check` on every item, on all cores, and add up the reports.
fn in_parallel<T: Sync>(
    items: &[T],
    check: impl Fn(&T, &mut VerifyReport) -> Result<()> + Sync,
) -> Result<VerifyReport> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    let check = &check;
    let parts: Vec<Result<VerifyReport>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut report = VerifyReport::default();
                    for item in part {
                        check(item, &mut report)?;
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
    Ok(report)
}
