//! The peer: img2dataset on the same URL list, from a virtual environment the
//! benchmark makes under the cache folder (`pip install img2dataset`), downloading
//! only (`resize_mode=no`, no re-encoding, files output), with its default opt-out
//! directives, no retries, as many processes as we have threads, and threads enough in each for
//! the same requests in flight as ours.

use crate::images::Usage;
use crate::images::peer::{run_img2dataset, version};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What img2dataset did, from its `_stats.json` files.
pub struct PeerRun {
    pub usage: Usage,
    pub successes: u64,
    pub failed_to_download: u64,
    pub failed_to_resize: u64,
    /// Its error messages, most frequent first.
    pub errors: Vec<(String, u64)>,
    pub version: String,
}

/// A Python with img2dataset: `given`, or a venv made (once) under the cache folder;
/// `Err` says why there is none.
pub fn python(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return version(&p)
            .map(|_| p.clone())
            .ok_or_else(|| format!("{} cannot import img2dataset", p.display()));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .ok_or("no cache folder (neither XDG_CACHE_HOME nor HOME is set)")?;
    let venv = cache.join("reasongen").join("bench-img2dataset");
    let python = venv.join("bin").join("python");
    if version(&python).is_some() {
        return Ok(python);
    }
    println!("making {} with img2dataset (pip install)…", venv.display());
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{what} failed: {}",
            err.lines().last().unwrap_or_default()
        ))
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    run(
        Command::new(venv.join("bin").join("pip")).args(["install", "-q", "img2dataset"]),
        "pip install img2dataset",
    )?;
    version(&python)
        .map(|_| python.clone())
        .ok_or_else(|| "img2dataset installed but not importable".into())
}

/// Run img2dataset over `urls` into `out`.
pub fn run(
    python: &Path,
    urls: &[String],
    out: &Path,
    processes: usize,
    in_flight: usize,
) -> Result<PeerRun> {
    let version = version(python).context("img2dataset is not importable")?;
    let list = out.with_extension("urls.txt");
    std::fs::write(&list, urls.join("\n") + "\n")?;
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    let per_shard = urls.len().div_ceil(processes.max(1) * 4).max(1);
    let mut cmd = Command::new(python);
    cmd.args(["-m", "img2dataset.main"])
        .arg(format!("--url_list={}", list.display()))
        .arg(format!("--output_folder={}", out.display()))
        .args([
            "--input_format=txt",
            "--output_format=files",
            "--resize_mode=no",
            "--skip_reencode=True",
            "--extract_exif=False",
            "--distributor=multiprocessing",
            "--timeout=10",
            "--retries=0",
        ])
        .arg(format!("--processes_count={processes}"))
        .arg(format!(
            "--thread_count={}",
            in_flight.div_ceil(processes.max(1))
        ))
        .arg(format!("--number_sample_per_shard={per_shard}"));
    let usage = run_img2dataset(&mut cmd)?;
    let mut run = PeerRun {
        usage,
        successes: 0,
        failed_to_download: 0,
        failed_to_resize: 0,
        errors: Vec::new(),
        version,
    };
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with("_stats.json") {
            let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
            let n = |k: &str| stats[k].as_u64().unwrap_or(0);
            run.successes += n("successes");
            run.failed_to_download += n("failed_to_download");
            run.failed_to_resize += n("failed_to_resize");
            if let Some(dict) = stats["status_dict"].as_object() {
                for (k, v) in dict {
                    *errors.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
                }
            }
        }
    }
    run.errors = errors.into_iter().filter(|(k, _)| k != "success").collect();
    run.errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    Ok(run)
}
