//! The image benchmark: decode + resize + encode + shard write of N photo-like images
//! of mixed sizes ([`corpus`]), beside img2dataset on the same files ([`peer`]).
//!
//! Timed for reasongen, as a recipe runs them: `source.image_folder` (the files into a
//! `source_image` table), then `images.prepare` (decode, orient, crop, resize to
//! `--size` with Pillow's bicubic filter, JPEG at `--quality`, SHA-256 of each original,
//! Parquet shards), on `--threads` threads; then `images.prepare` again without DCT
//! scaling, to show what it brings. Timed for img2dataset: its whole run over the same
//! files with as many processes. Each figure is wall time and CPU time (user + system,
//! of this process or of the peer and its children); "per core" is images per CPU
//! second. The page cache holds the files for both (the corpus is made or read first).

mod corpus;
pub(crate) mod peer;

use anyhow::{Result, anyhow, ensure};
use stages::images::prepare::{PrepareConfig, write_prepared};
use stages::sources::image_folder::{ImageFolderConfig, write_image_folder};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ImagesBenchArgs {
    /// Images in the corpus.
    #[arg(long, default_value_t = 10_000)]
    images: usize,
    /// Side of the prepared squares.
    #[arg(long, default_value_t = 384)]
    size: u32,
    /// JPEG quality of the prepared images (both tools).
    #[arg(long, default_value_t = 95)]
    quality: u8,
    /// Threads for reasongen, processes for img2dataset (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Work folder, kept (default: a temporary one). The corpus in it is reused.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The Python with img2dataset and scikit-image (default: `python3` on PATH).
    #[arg(long)]
    python: Option<PathBuf>,
}

/// Wall and CPU seconds of some work.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub wall: f64,
    pub cpu: f64,
}

fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

impl Usage {
    fn measure<T>(who: libc::c_int, work: impl FnOnce() -> Result<T>) -> Result<(T, Usage)> {
        let (cpu, start) = (cpu_seconds(who), Instant::now());
        let out = work()?;
        let usage = Usage {
            wall: start.elapsed().as_secs_f64(),
            cpu: cpu_seconds(who) - cpu,
        };
        Ok((out, usage))
    }

    /// The usage of `work` in this process (every thread).
    pub(crate) fn of_self<T>(work: impl FnOnce() -> Result<T>) -> Result<(T, Usage)> {
        Self::measure(libc::RUSAGE_SELF, work)
    }

    /// The usage of the child processes `work` runs and waits for.
    pub fn of_child(work: impl FnOnce() -> Result<()>) -> Result<Usage> {
        Ok(Self::measure(libc::RUSAGE_CHILDREN, work)?.1)
    }

    fn plus(self, other: Usage) -> Usage {
        Usage {
            wall: self.wall + other.wall,
            cpu: self.cpu + other.cpu,
        }
    }
}

fn row(what: &str, n: usize, u: Usage) {
    println!(
        "| {what} | {:.1} s | {:.1} s | {:.0} | **{:.0}** | {:.2} ms |",
        u.wall,
        u.cpu,
        n as f64 / u.wall,
        n as f64 / u.cpu,
        u.cpu * 1000.0 / n as f64
    );
}

/// Prepare the table in `source` into `out`; its usage.
fn prepare(
    source: &Path,
    out: &Path,
    config: &PrepareConfig,
    threads: usize,
    n: usize,
) -> Result<Usage> {
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    std::fs::create_dir_all(out)?;
    let (summary, usage) = Usage::of_self(|| {
        write_prepared(config, source, out, threads, &())
            .map_err(|e| anyhow!("images.prepare: {e}"))
    })?;
    ensure!(
        summary.table.rows as usize == n,
        "{} of {n} images prepared; quarantined: {:?}",
        summary.table.rows,
        summary.reasons
    );
    Ok(usage)
}

pub fn run(args: ImagesBenchArgs) -> Result<ExitCode> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let temp = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let python = args
        .python
        .clone()
        .unwrap_or_else(|| PathBuf::from("python3"));
    let n = args.images;

    let (images, corpus) = corpus::make(&dir, n, &python, threads)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&images)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    // Read every file once, so that both tools find them in the page cache.
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::read(f).map_or(0, |b| b.len() as u64))
        .sum();
    println!(
        "{n} images from {} photographs, {:.0} MB ({} JPEG, {} PNG); shorter side min {} / median {} / max {} px; {threads} threads",
        corpus.photos,
        bytes as f64 / 1e6,
        corpus.jpeg,
        corpus.png,
        corpus.shorter_side[0],
        corpus.shorter_side[1],
        corpus.shorter_side[2],
    );

    let source = dir.join("source");
    if source.exists() {
        std::fs::remove_dir_all(&source)?;
    }
    std::fs::create_dir_all(&source)?;
    let folder = ImageFolderConfig {
        path: images.display().to_string(),
        recursive: false,
        caption_key: "caption".into(),
    };
    let (_, read) = Usage::of_self(|| {
        write_image_folder(&folder, &dir, &source, &())
            .map_err(|e| anyhow!("source.image_folder: {e}"))
    })?;
    let config = PrepareConfig {
        size: args.size,
        quality: args.quality,
        ..PrepareConfig::default()
    };
    let prepared = prepare(&source, &dir.join("prepared"), &config, threads, n)?;
    let full = PrepareConfig {
        dct_scaling: false,
        ..config.clone()
    };
    let no_dct = prepare(
        &source,
        &dir.join("prepared_full_decode"),
        &full,
        threads,
        n,
    )?;

    println!();
    println!(
        "| {n} images → {0}×{0} JPEG q{1} | wall | CPU | images/s | images/s per core | CPU per image |",
        args.size, args.quality
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    row("reasongen: files → `source_image` table", n, read);
    row("reasongen: `images.prepare`", n, prepared);
    let ours = read.plus(prepared);
    row("reasongen: both (files → prepared shards)", n, ours);
    row("reasongen: both, without DCT scaling", n, read.plus(no_dct));
    match peer::version(&python) {
        Some(_) => {
            let peer = peer::run(
                &python,
                &files,
                &dir.join("img2dataset"),
                args.size,
                args.quality,
                threads,
            )?;
            row(
                &format!("img2dataset {} (file:// URLs)", peer.version),
                n,
                peer.usage,
            );
            println!();
            println!(
                "img2dataset wrote {} of {n} images. Per core, reasongen does {:.1}× img2dataset's images per CPU second; {:.1}× without DCT scaling.",
                peer.successes,
                peer.usage.cpu / ours.cpu,
                peer.usage.cpu / read.plus(no_dct).cpu
            );
        }
        None => println!(
            "\nimg2dataset: not importable by {} (pip install img2dataset); peer skipped.",
            python.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
