//! The fetch benchmark: N images of a few KB from a loopback server that answers
//! each request after a latency ([`server`], in a process of its own), fetched by
//! `images.fetch` (as a recipe runs it, without the memo) and by img2dataset on the
//! same URL list in the same command ([`peer`]). One URL in 50 is missing (404) and
//! one in 100 is an HTML page served as `image/jpeg`, so both tools' accounting is
//! checked against what the server holds. Figures: wall and CPU time (user + system,
//! of this process, or of img2dataset and its children), images/s, and images per CPU
//! second ("per core"), both per URL handled.

mod peer;
mod server;

use crate::images::Usage;
use anyhow::{Result, anyhow};
use polars::prelude::{DataFrame, NamedFrom, ParquetWriter, Series};
use stages::images::fetch::{FetchConfig, write_fetched};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct FetchBenchArgs {
    /// URLs in the list.
    #[arg(long, default_value_t = 10_000)]
    images: usize,
    /// The server's latency per answer, milliseconds.
    #[arg(long, default_value_t = 30)]
    latency_ms: u64,
    /// Requests in flight (img2dataset: processes × threads to match).
    #[arg(long, default_value_t = 64)]
    concurrency: u32,
    /// Threads for reasongen, processes for img2dataset (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Work folder, kept (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A Python with img2dataset (default: a venv made under the cache folder).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Serve the images until standard input closes (used by the benchmark itself).
    #[arg(long = "serve", hide = true)]
    serve: bool,
}

fn row(what: &str, n: usize, u: Usage) {
    println!(
        "| {what} | {:.1} s | {:.2} s | {:.0} | **{:.0}** |",
        u.wall,
        u.cpu,
        n as f64 / u.wall,
        n as f64 / u.cpu,
    );
}

pub fn run(args: FetchBenchArgs) -> Result<ExitCode> {
    let latency = Duration::from_millis(args.latency_ms);
    let n = args.images;
    if args.serve {
        server::serve(n, latency)?;
        return Ok(ExitCode::SUCCESS);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let temp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().into());
    std::fs::create_dir_all(&dir)?;
    let srv = server::Server::start(n, latency)?;
    let urls: Vec<String> = (0..n)
        .map(|i| format!("{}{}", srv.root, server::path(i)))
        .collect();
    let input = dir.join("urls");
    std::fs::create_dir_all(&input)?;
    let mut frame = DataFrame::new_infer_height(vec![Series::new("url".into(), &urls).into()])?;
    ParquetWriter::new(std::fs::File::create(
        input.join(datasets::table::shard_name(0)),
    )?)
    .finish(&mut frame)?;
    let (images, missing, not_images) = server::expected(n);
    println!(
        "{n} URLs on a loopback server answering after {} ms: {images} JPEGs of 3–5 KB, {missing} missing (404), {not_images} HTML pages served as image/jpeg; {threads} threads, concurrency {}",
        args.latency_ms, args.concurrency
    );

    let config = FetchConfig {
        concurrency: args.concurrency,
        per_host_concurrency: args.concurrency,
        per_host_requests_per_second: 0.0,
        threads: Some(threads as u32),
        ..FetchConfig::default()
    };
    let out = dir.join("reasongen");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(&out)?;
    let (summary, ours) = Usage::of_self(|| {
        write_fetched(&config, &input, &out, None, threads, &())
            .map_err(|e| anyhow!("images.fetch: {e}"))
    })?;

    let python = peer::python(args.python.clone());
    let peer = match &python {
        Ok(p) => Some(peer::run(
            p,
            &urls,
            &dir.join("img2dataset"),
            threads,
            args.concurrency as usize,
        )?),
        Err(_) => None,
    };

    println!();
    println!(
        "| {n} URLs, {} ms latency | wall | CPU | images/s | images/s per core |",
        args.latency_ms
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    row("reasongen `images.fetch`", n, ours);
    if let Some(p) = &peer {
        row(&format!("img2dataset {}", p.version), n, p.usage);
    }
    println!();
    let s = &summary.stats;
    let reasons: Vec<String> = s.reasons.iter().map(|(r, k)| format!("{r} {k}")).collect();
    let statuses: Vec<String> = s
        .statuses
        .iter()
        .map(|(c, k)| format!("HTTP {c}: {k}"))
        .collect();
    println!(
        "reasongen: {} images, {} failed ({}; {}); {} requests; expected {images} images, {} failures",
        s.images,
        s.failed,
        reasons.join(", "),
        statuses.join(", "),
        s.requests,
        missing + not_images,
    );
    match (&peer, &python) {
        (Some(p), _) => {
            let errors: Vec<String> = p.errors.iter().map(|(e, k)| format!("{e}: {k}")).collect();
            println!(
                "img2dataset: {} successes, {} failed to download, {} failed to resize ({})",
                p.successes,
                p.failed_to_download,
                p.failed_to_resize,
                errors.join("; ")
            );
            println!(
                "Per core, reasongen fetches {:.1}× img2dataset's images per CPU second; wall clock {:.1}×.",
                p.usage.cpu / ours.cpu,
                p.usage.wall / ours.wall
            );
        }
        (None, Err(why)) => println!("img2dataset skipped: {why}"),
        (None, Ok(_)) => {}
    }
    Ok(ExitCode::SUCCESS)
}
