//! The peer: img2dataset on the same files, given as `file://` URLs (its downloader is
//! `urllib`, which reads them like any URL, so no server stands between it and the
//! disk), with the same work asked: centre crop to the same size, JPEG at the same
//! quality, SHA-256 of the originals, Parquet shards, as many processes as we have
//! threads. EXIF extraction is off (we keep none but the orientation).

use super::Usage;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// What img2dataset did.
pub struct PeerRun {
    pub usage: Usage,
    pub successes: u64,
    pub version: String,
}

/// The img2dataset version `python` has, if it has it.
pub fn version(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('img2dataset'))",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Run the img2dataset command `cmd` to its end: the CPU it and its children used, or
/// its last line of standard error when it fails.
pub(crate) fn run_img2dataset(cmd: &mut Command) -> Result<Usage> {
    Usage::of_child(|| {
        let status = cmd.output().context("running img2dataset")?;
        if !status.status.success() {
            bail!(
                "img2dataset failed: {}",
                String::from_utf8_lossy(&status.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            );
        }
        Ok(())
    })
}

/// Run img2dataset over `files` into `out`.
pub fn run(
    python: &Path,
    files: &[std::path::PathBuf],
    out: &Path,
    size: u32,
    quality: u8,
    processes: usize,
) -> Result<PeerRun> {
    let version = version(python).context("img2dataset is not importable")?;
    let list = out.with_extension("urls.txt");
    let urls: Vec<String> = files
        .iter()
        .map(|f| format!("file://{}", f.display()))
        .collect();
    std::fs::write(&list, urls.join("\n") + "\n")?;
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    let per_shard = files.len().div_ceil(processes.max(1) * 4).max(1);
    let mut cmd = Command::new(python);
    cmd.args(["-m", "img2dataset.main"])
        .arg(format!("--url_list={}", list.display()))
        .arg(format!("--output_folder={}", out.display()))
        .args([
            "--input_format=txt",
            "--output_format=parquet",
            "--resize_mode=center_crop",
            "--encode_format=jpg",
            "--compute_hash=sha256",
            "--extract_exif=False",
            "--distributor=multiprocessing",
            "--thread_count=8",
            "--timeout=30",
        ])
        .arg(format!("--image_size={size}"))
        .arg(format!("--encode_quality={quality}"))
        .arg(format!("--processes_count={processes}"))
        .arg(format!("--number_sample_per_shard={per_shard}"));
    let usage = run_img2dataset(&mut cmd)?;
    let mut successes = 0;
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with("_stats.json") {
            let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
            successes += stats["successes"].as_u64().unwrap_or(0);
        }
    }
    Ok(PeerRun {
        usage,
        successes,
        version,
    })
}
