//! Helpers for end-to-end tests of the `reasongen` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod llama;

/// A scratch project folder with its own store.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// A `reasongen` command in the project folder, on the project's store.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_on(self.store().as_os_str(), args)
    }

    /// A `reasongen` command in the project folder, on `store` (a folder or an
    /// `s3://` URL).
    pub fn cmd_on(&self, store: &std::ffi::OsStr, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_reasongen"));
        c.arg("--store")
            .arg(store)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("REASONGEN_FAULT")
            .env_remove("REASONGEN_STORE");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().unwrap())
    }

    /// Every file in the store, with its contents (lossy), for "never appears" checks.
    pub fn store_files(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        walk(&self.store(), &mut out);
        out
    }
}

/// Every file under `dir`, with its contents (lossy).
pub fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            let bytes = std::fs::read(&p).unwrap_or_default();
            out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
}

/// A finished command: exit code and both streams together.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "command failed:\n{}", self.text());
        self
    }
}

/// The repository's own files (recipes, data).
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
