//! The peers of the LLM benchmark: Bespoke Curator and distilabel, each driven by a
//! script of ours (`scripts/llm_peers/`, built into this binary and written to the work
//! folder) against the same server, with the same messages, request count and
//! concurrency. A driver prints one JSON line: rows answered and failed, its version,
//! the seconds its generation took and the CPU seconds it had used before generation
//! started (imports and setup), so that both can be left out of its figures.

use super::measure::{self, Measured};
use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use std::path::Path;
use std::process::Command;

/// A peer: its name, the package that must be importable, how to install it, and
/// its driver script.
pub struct Peer {
    pub name: &'static str,
    module: &'static str,
    package: &'static str,
    script: (&'static str, &'static str),
}

pub static PEERS: [Peer; 2] = [
    Peer {
        name: "curator",
        module: "bespokelabs.curator",
        package: "bespokelabs-curator",
        script: (
            "curator_bench.py",
            include_str!("../../../../scripts/llm_peers/curator_bench.py"),
        ),
    },
    Peer {
        name: "distilabel",
        module: "distilabel",
        package: "distilabel",
        script: (
            "distilabel_bench.py",
            include_str!("../../../../scripts/llm_peers/distilabel_bench.py"),
        ),
    },
];

/// The driver's report.
#[derive(Deserialize)]
struct Report {
    answered: u64,
    failed: u64,
    version: String,
    gen_seconds: f64,
    cpu_before: f64,
}

/// What a peer did.
pub struct PeerRun {
    pub version: String,
    /// Wall seconds of its generation.
    pub wall: f64,
    /// CPU seconds of its generation (its whole run less what it used before).
    pub cpu: f64,
    pub measured: Measured,
}

impl Peer {
    /// Why `python` cannot run this peer, if it cannot.
    pub fn missing(&self, python: &Path) -> Option<String> {
        let ok = Command::new(python)
            .args(["-c", &format!("import {}", self.module)])
            .output()
            .is_ok_and(|o| o.status.success());
        (!ok).then(|| {
            format!(
                "{}: `import {}` fails with {} (pip install {}); skipped",
                self.name,
                self.module,
                python.display(),
                self.package
            )
        })
    }

    /// Send the requests of `requests` (JSONL of `system`, `user`) to `url` at
    /// `concurrency`, working in `dir`.
    pub fn run(
        &self,
        python: &Path,
        dir: &Path,
        requests: &Path,
        url: &str,
        concurrency: usize,
    ) -> Result<PeerRun> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        let script = dir.join(self.script.0);
        std::fs::write(&script, self.script.1)?;
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg("--requests")
            .arg(requests)
            .args(["--base-url", url, "--model", "mock-model"])
            .arg("--concurrency")
            .arg(concurrency.to_string())
            .arg("--work")
            .arg(dir)
            .current_dir(dir)
            // Caches and telemetry inside the work folder, or off.
            .env("HOME", dir)
            .env("CURATOR_CACHE_DIR", dir.join("curator-cache"))
            .env("DISTILABEL_CACHE_DIR", dir.join("distilabel-cache"))
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("CURATOR_DISABLE_RICH_DISPLAY", "1")
            .env("TELEMETRY_ENABLED", "false")
            .env("DO_NOT_TRACK", "1")
            .env("HF_HUB_OFFLINE", "1")
            .env("OPENAI_API_KEY", "not-checked-by-the-mock");
        let measured = measure::run(&mut cmd)?;
        if !measured.success {
            let tail: Vec<&str> = measured.stderr.lines().rev().take(15).collect();
            bail!(
                "{} failed:\n{}",
                self.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let line = measured
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .with_context(|| format!("{} printed no report:\n{}", self.name, measured.stdout))?;
        let report: Report = serde_json::from_str(line)
            .with_context(|| format!("{}'s report `{line}`", self.name))?;
        let n = std::fs::read_to_string(requests)?.lines().count() as u64;
        ensure!(
            report.answered == n && report.failed == 0,
            "{}: {} of {n} answered, {} failed",
            self.name,
            report.answered,
            report.failed
        );
        Ok(PeerRun {
            version: report.version,
            wall: report.gen_seconds,
            cpu: measured.cpu - report.cpu_before,
            measured,
        })
    }
}
