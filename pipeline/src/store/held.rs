//! Large files from outside the store, held without a second copy.
//!
//! A model folder a user brings (Janus-Pro-7B is 15 GB of weights) enters the store by
//! content digest like anything else, but its weight files are not copied. A stage puts
//! such a file into its output with [`StageContext::hold`](crate::StageContext::hold):
//!
//! - **hard link** ([`Hold::Link`], the default, when the file is on the store's
//!   filesystem and the kernel allows it): the artifact's file is a second name of the
//!   user's file, one inode and one set of blocks. Removing either name (the user
//!   deleting the folder, `gc` removing the artifact) leaves the other intact. But a
//!   change *in place* (a program that opens the file for writing instead of replacing
//!   it) changes both names at once: the store's file *is* the user's file. So the
//!   store does not make it read-only (that would change the user's file too), readers
//!   check its size and mtime before use, and `reasongen verify` re-hashes it and
//!   reports a changed one.
//! - **reference** ([`Hold::Reference`], or when a hard link fails: another filesystem,
//!   a file the user does not own): the artifact holds a symlink to the file's absolute
//!   path, so loaders read it where it lies. The same checks apply; a file that is gone
//!   or changed is an error naming it.
//!
//! Either way the manifest's `content` lists the file's sha256 and size like any other
//! file, so the artifact's digest follows from the bytes, not from where they lie or how
//! they are held; the manifest's `held` list (outside the digest) records each held
//! file's source, size and mtime for the checks. Hashing goes through the store's
//! [`FileHasher`], whose stat cache the stage's run key has usually just filled, so a
//! 15 GB folder is read once, not once per step.

use super::files::FileHasher;
use super::{IoContext, Result, StoreError};
use crate::digest::Digest;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How a stage asks for an outside file to be held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// A hard link where the filesystem allows it, else a reference.
    #[default]
    Link,
    /// Always a reference (a symlink to the file, checked by digest).
    Reference,
}

/// How a file is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldAs {
    Link,
    Reference,
}

/// One held file of an artifact, as its manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldFile {
    /// The file's path in the artifact.
    pub path: String,
    /// The absolute path of the file outside the store when it was held.
    pub source: PathBuf,
    pub held_as: HeldAs,
    pub sha256: Digest,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// What [`hold`] did.
pub struct Held {
    pub file: HeldFile,
    /// Why a hard link was asked for and a reference made instead.
    pub link_failed: Option<std::io::Error>,
}

/// Hold `source` at `dest` (a path inside an output folder; `rel` is its path in the
/// artifact) as `how` asks, hashing it through `files`.
pub(crate) fn hold(
    files: &FileHasher,
    source: &Path,
    dest: &Path,
    rel: &str,
    how: Hold,
) -> Result<Held> {
    let source = std::fs::canonicalize(source).at(source)?;
    let before = std::fs::metadata(&source).at(&source)?;
    if !before.is_file() {
        return Err(StoreError::Corrupt {
            path: source,
            message: "is not a file".into(),
        });
    }
    let sha256 = files.digest(&source).at(&source)?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let link_failed = match how {
        Hold::Link => std::fs::hard_link(&source, dest).err(),
        Hold::Reference => None,
    };
    let held_as = if how == Hold::Link && link_failed.is_none() {
        HeldAs::Link
    } else {
        std::os::unix::fs::symlink(&source, dest).at(dest)?;
        HeldAs::Reference
    };
    let after = std::fs::metadata(&source).at(&source)?;
    if after.len() != before.len() || mtime_ns(&after) != mtime_ns(&before) {
        return Err(StoreError::Corrupt {
            path: source,
            message: "changed while it was being brought into the store; try again".into(),
        });
    }
    if held_as == HeldAs::Link {
        // Linking moved the inode's ctime, which the stat cache keys on: tell it the
        // bytes it hashed are still the bytes, or the next run would hash them again.
        files.remember(&source, &after, sha256);
    }
    Ok(Held {
        file: HeldFile {
            path: rel.to_string(),
            source,
            held_as,
            sha256,
            size: before.len(),
            mtime_ns: mtime_ns(&before),
        },
        link_failed,
    })
}

impl HeldFile {
    /// How the file is held, in words: "a hard link shared with /x" or "a reference to /x".
    pub fn describe(&self) -> String {
        match self.held_as {
            HeldAs::Link => format!("a hard link shared with {}", self.source.display()),
            HeldAs::Reference => format!("a reference to {}", self.source.display()),
        }
    }

    /// The quick check before use: the file in the artifact folder `dir` (through the
    /// link or reference) has the size and mtime it had when it was held. The error
    /// says what changed and what to do (the caller names the file in the artifact).
    pub fn check(&self, dir: &Path) -> std::result::Result<(), String> {
        let what = match std::fs::metadata(dir.join(&self.path)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "is gone".to_string(),
            Err(e) => format!("cannot be read: {e}"),
            Ok(m) if m.len() != self.size => {
                format!("changed size ({} bytes, {} when held)", m.len(), self.size)
            }
            Ok(m) if mtime_ns(&m) != self.mtime_ns => {
                "was modified after it was brought into the store".to_string()
            }
            Ok(_) => return Ok(()),
        };
        Err(format!("{} {what}; {REMEDY}", self.describe()))
    }
}

/// What to do about a held file that changed or went away.
pub(crate) const REMEDY: &str = "`reasongen verify --fix` drops the stale artifact, then run the recipe again to bring the folder in anew";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_link_shares_the_inode_and_a_reference_points_at_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let files = store.file_hasher().unwrap();
        let source = dir.path().join("weights.bin");
        std::fs::write(&source, b"0123456789").unwrap();
        let out = dir.path().join("out");

        let linked = hold(&files, &source, &out.join("a/w.bin"), "a/w.bin", Hold::Link).unwrap();
        assert_eq!(linked.file.held_as, HeldAs::Link);
        assert!(linked.link_failed.is_none());
        let (a, b) = (
            std::fs::metadata(&source).unwrap(),
            std::fs::metadata(out.join("a/w.bin")).unwrap(),
        );
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "one inode, two names");
        assert_eq!(linked.file.sha256, Digest::of_bytes(b"0123456789"));
        assert_eq!(linked.file.check(&out), Ok(()));

        let referenced = hold(
            &files,
            &source,
            &out.join("r.bin"),
            "r.bin",
            Hold::Reference,
        )
        .unwrap()
        .file;
        assert_eq!(referenced.held_as, HeldAs::Reference);
        let target = std::fs::read_link(out.join("r.bin")).unwrap();
        assert!(target.is_absolute() && target.ends_with("weights.bin"));

        // Changed in place: both quick checks fail, naming the file and the remedy.
        std::fs::write(&source, b"0123456789abc").unwrap();
        for held in [&linked.file, &referenced] {
            let e = held.check(&out).unwrap_err();
            assert!(
                e.contains("weights.bin") && e.contains("changed size"),
                "{e}"
            );
            assert!(e.contains("run the recipe again"), "{e}");
        }
        std::fs::remove_file(&source).unwrap();
        let e = referenced.check(&out).unwrap_err();
        assert!(e.contains("is gone") && e.contains("weights.bin"), "{e}");
        // The user deleting their name leaves the store's.
        assert_eq!(
            std::fs::read(out.join("a/w.bin")).unwrap(),
            b"0123456789abc"
        );
    }

    #[test]
    fn a_folder_is_not_a_file_to_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let files = store.file_hasher().unwrap();
        let e = hold(&files, dir.path(), &dir.path().join("x"), "x", Hold::Link)
            .err()
            .unwrap();
        assert!(e.to_string().contains("is not a file"), "{e}");
    }
}
