//! The engine benchmark: a recipe of N nodes whose tables hold M rows; times the cold
//! run, a no-op re-run and `plan`, then shows that the no-op paths read no table: they
//! are timed again with every Parquet shard of the store moved away.

use anyhow::{Context, Result, ensure};
use polars::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(clap::Args)]
pub struct DagBenchArgs {
    /// Nodes in the recipe.
    #[arg(long, default_value_t = 200)]
    nodes: usize,
    /// Rows in the source tables, in total.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Source tables (the other nodes filter them).
    #[arg(long, default_value_t = 10)]
    sources: usize,
    /// Work folder (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn write_sources(dir: &Path, sources: usize, rows: usize) -> Result<()> {
    let per = rows / sources;
    for s in 0..sources {
        let ids: Vec<i64> = (0..per as i64).map(|i| i + (s * per) as i64).collect();
        let score: Vec<f64> = ids
            .iter()
            .map(|i| ((i * 7919) % 1000) as f64 / 1000.0)
            .collect();
        let tag: Vec<&str> = ids
            .iter()
            .map(|i| ["counting", "colors", "position"][(*i % 3) as usize])
            .collect();
        let text: Vec<String> = ids
            .iter()
            .map(|i| format!("a photo of {} things, row {i}", i % 5))
            .collect();
        let mut df = df!("id" => ids, "score" => score, "tag" => tag, "text" => text)?;
        let path = dir.join(format!("source-{s:03}.parquet"));
        ParquetWriter::new(std::fs::File::create(&path)?).finish(&mut df)?;
    }
    Ok(())
}

fn recipe(nodes: usize, sources: usize) -> String {
    let mut r = String::from("[recipe]\nname = \"bench-dag\"\n\n");
    for s in 0..sources {
        writeln!(r, "[nodes.src{s:03}]\nkind = \"table.import\"\nconfig = {{ path = \"source-{s:03}.parquet\" }}\n").unwrap();
    }
    for n in 0..nodes.saturating_sub(sources) {
        // A chain of filters over each source, each step more selective than the one
        // before, so that every node writes a different table.
        let src = n % sources;
        let input = if n < sources {
            format!("src{src:03}")
        } else {
            format!("f{:03}", n - sources)
        };
        let threshold = 0.99 - 0.9 * (n as f64 / nodes as f64);
        writeln!(
            r,
            "[nodes.f{n:03}]\nkind = \"table.filter\"\ninputs = {{ input = \"{input}\" }}\nconfig = {{ where = \"score < {threshold:.3} OR (tag = 'colors' AND id % {m} = 0)\" }}\n", m = n + 2
        )
        .unwrap();
    }
    r
}

/// Run this binary with `args`; return (wall seconds, stdout+stderr).
fn timed(dir: &Path, args: &[&str]) -> Result<(f64, String)> {
    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let out = Command::new(exe).args(args).current_dir(dir).output()?;
    let secs = t.elapsed().as_secs_f64();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "reasongen {} failed:\n{text}",
        args.join(" ")
    );
    Ok((secs, text))
}

fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            parquet_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    Ok(())
}

pub fn run(args: DagBenchArgs) -> Result<ExitCode> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    ensure!(
        args.sources >= 1 && args.nodes > args.sources,
        "need more nodes than sources"
    );
    write_sources(&dir, args.sources, args.rows)?;
    std::fs::write(dir.join("bench.toml"), recipe(args.nodes, args.sources))?;
    let quiet = ["--quiet", "--store", "store"];
    let run = |extra: &[&str]| -> Result<(f64, String)> {
        let mut a: Vec<&str> = extra.to_vec();
        a.extend_from_slice(&quiet);
        timed(&dir, &a)
    };
    println!(
        "dag benchmark: {} nodes ({} imports of {} rows in total, {} filters), folder {}",
        args.nodes,
        args.sources,
        args.rows,
        args.nodes - args.sources,
        dir.display()
    );
    let (cold, _) = run(&["run", "bench.toml"])?;
    let store = dir.join("store");
    let mut shards = Vec::new();
    parquet_files(&store.join("objects"), &mut shards)?;
    let bytes: u64 = shards
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let rows = total_rows(&store)?;
    println!(
        "  cold run:        {cold:>7.2} s  ({} shards, {rows} rows, {:.1} MiB in the store's tables)",
        shards.len(),
        bytes as f64 / 1048576.0
    );
    let (noop, out) = run(&["run", "bench.toml"])?;
    let (plan, plan_out) = run(&["plan", "bench.toml"])?;
    ensure!(
        plan_out.contains(&format!("{} fresh, 0 stale", args.nodes)),
        "plan after a run is not all fresh:\n{plan_out}"
    );
    let _ = out;
    println!(
        "  no-op re-run:    {noop:>7.3} s  (all {} nodes fresh)",
        args.nodes
    );
    println!("  plan:            {plan:>7.3} s");

    // Move every shard away: the no-op paths must not notice.
    let aside = dir.join("aside");
    std::fs::create_dir_all(&aside)?;
    let mut moved = Vec::new();
    for (i, p) in shards.iter().enumerate() {
        let to = aside.join(format!("{i}.parquet"));
        std::fs::rename(p, &to)?;
        moved.push((p.clone(), to));
    }
    let checked = (|| -> Result<(f64, f64)> {
        let (noop2, _) = run(&["run", "bench.toml"])?;
        let (plan2, out2) = run(&["plan", "bench.toml"])?;
        ensure!(
            out2.contains(&format!("{} fresh, 0 stale", args.nodes)),
            "plan without shards:\n{out2}"
        );
        Ok((noop2, plan2))
    })();
    for (from, to) in &moved {
        std::fs::rename(to, from)?;
    }
    let (noop2, plan2) = checked.context("a no-op path read table contents")?;
    println!(
        "  with all {} shards moved out of the store: no-op re-run {noop2:.3} s, plan {plan2:.3} s, all fresh (no table is read)",
        shards.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Rows over every table artifact, from the manifests.
fn total_rows(store: &Path) -> Result<u64> {
    let s = pipeline::Store::open(store)?;
    let mut total = 0;
    for d in s.objects()? {
        total += s.manifest(&d)?.content.rows.unwrap_or(0);
    }
    Ok(total)
}
