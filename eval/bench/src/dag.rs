//! The engine benchmark: a recipe of N nodes whose tables hold M rows; times the cold
//! run, a no-op re-run and `plan`, then shows that the no-op paths read no table: they
//! are timed again with every Parquet shard of the store moved away.
//!
//! Its peer is DVC (`pip install dvc pyarrow`), run side by side when a `dvc` executable
//! is on PATH or given with `--dvc`: the same recipe as a DVC pipeline in the folder
//! `dvc/` of the work folder (a `dvc init --no-scm` project), one stage per node, each
//! running a Python script that does the node's work with pyarrow (an import copies its
//! source, a filter keeps the rows that match the same condition), with the node's
//! input and output as the stage's `deps` and `outs` and the condition in its command.
//! Its cold `dvc repro`, no-op `dvc repro` and `dvc status` are timed beside reasongen's
//! cold run, no-op re-run and `plan`, and its outputs must hold as many rows as
//! reasongen's tables.

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
    /// The `dvc` executable of the DVC peer (default: `dvc` on PATH; if none, no peer).
    #[arg(long)]
    dvc: Option<PathBuf>,
}

pub(crate) fn write_sources(dir: &Path, sources: usize, rows: usize) -> Result<()> {
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
        let path = dir.join(source_file(s));
        ParquetWriter::new(std::fs::File::create(&path)?).finish(&mut df)?;
    }
    Ok(())
}

fn source_file(s: usize) -> String {
    format!("source-{s:03}.parquet")
}

/// The import node of source `s`.
fn import_node(s: usize) -> String {
    format!("src{s:03}")
}

/// A filter node: it keeps the rows of `input` where
/// `score < threshold OR (tag = 'colors' AND id % modulus = 0)`.
struct Filter {
    name: String,
    input: String,
    threshold: String,
    modulus: usize,
}

/// The filter nodes: a chain over each source, each step more selective than the one
/// before, so that every node writes a different table.
fn filters(nodes: usize, sources: usize) -> Vec<Filter> {
    (0..nodes.saturating_sub(sources))
        .map(|n| Filter {
            name: format!("f{n:03}"),
            input: if n < sources {
                import_node(n)
            } else {
                format!("f{:03}", n - sources)
            },
            threshold: format!("{:.3}", 0.99 - 0.9 * (n as f64 / nodes as f64)),
            modulus: n + 2,
        })
        .collect()
}

pub(crate) fn recipe(nodes: usize, sources: usize) -> String {
    let mut r = String::from("[recipe]\nname = \"bench-dag\"\n\n");
    for s in 0..sources {
        writeln!(
            r,
            "[nodes.{}]\nkind = \"table.import\"\nconfig = {{ path = \"{}\" }}\n",
            import_node(s),
            source_file(s)
        )
        .unwrap();
    }
    for f in filters(nodes, sources) {
        writeln!(
            r,
            "[nodes.{}]\nkind = \"table.filter\"\ninputs = {{ input = \"{}\" }}\nconfig = {{ where = \"score < {} OR (tag = 'colors' AND id % {} = 0)\" }}\n",
            f.name, f.input, f.threshold, f.modulus
        )
        .unwrap();
    }
    r
}

/// Run `cmd`; return (wall seconds, stdout+stderr).
pub(crate) fn timed(cmd: &mut Command) -> Result<(f64, String)> {
    let t = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let secs = t.elapsed().as_secs_f64();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "{cmd:?} failed:\n{text}");
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

/// The script of every DVC stage: the work of one node, with pyarrow.
const DVC_NODE_PY: &str = r#""""One node of reasongen's `bench dag` recipe, as a DVC stage.

node.py import SOURCE OUT    copy a Parquet source
node.py filter IN OUT T M    keep the rows where score < T OR (tag = 'colors' AND id % M = 0)
"""
import shutil
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

op, src, out = sys.argv[1:4]
if op == "import":
    shutil.copyfile(src, out)
else:
    t = pq.read_table(src)
    # Polars writes string views, which pyarrow's compute functions do not take.
    t = t.cast(pa.schema([f.with_type(pa.string()) if f.type == pa.string_view() else f for f in t.schema]))
    threshold, modulus = float(sys.argv[4]), int(sys.argv[5])
    colors = pc.and_(pc.equal(t["tag"], "colors"), pc.equal(pc.modulo(t["id"], modulus), 0))
    keep = pc.or_(pc.less(t["score"], threshold), colors)
    pq.write_table(t.filter(keep), out, compression="zstd")
"#;

/// The DVC peer: a DVC project holding the recipe as a pipeline.
struct Dvc {
    exe: PathBuf,
    dir: PathBuf,
    /// The stages' output files.
    outs: Vec<PathBuf>,
}

impl Dvc {
    /// The `dvc` executable: `--dvc`, else `dvc` on PATH.
    fn find(given: Option<&Path>) -> Option<PathBuf> {
        match given {
            Some(p) => Some(p.to_path_buf()),
            None => std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join("dvc"))
                .find(|p| p.is_file()),
        }
    }

    /// A fresh DVC project in `work/dvc` with the recipe's sources and its pipeline. The
    /// stages run the `python3` beside `exe` (a virtual environment's) if there is one,
    /// else the one on PATH.
    fn init(exe: PathBuf, work: &Path, nodes: usize, sources: usize) -> Result<Dvc> {
        let dir = work.join("dvc");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir(&dir)?;
        let beside = exe.with_file_name("python3");
        let python = if beside.is_file() {
            beside.display().to_string()
        } else {
            "python3".into()
        };
        std::fs::write(dir.join("node.py"), DVC_NODE_PY)?;
        let mut yaml = String::from("stages:\n");
        let mut outs = Vec::new();
        let mut stage = |name: &str, input: &str, args: &str| {
            let cmd = format!("{python} node.py {args}");
            writeln!(
                yaml,
                "  {name}:\n    cmd: {}\n    deps: [node.py, {input}]\n    outs: [{name}.parquet]",
                serde_json::to_string(&cmd).unwrap()
            )
            .unwrap();
            outs.push(dir.join(format!("{name}.parquet")));
        };
        for s in 0..sources {
            let (name, src) = (import_node(s), source_file(s));
            std::fs::copy(work.join(&src), dir.join(&src))?;
            stage(&name, &src, &format!("import {src} {name}.parquet"));
        }
        for f in filters(nodes, sources) {
            let input = format!("{}.parquet", f.input);
            let args = format!(
                "filter {input} {}.parquet {} {}",
                f.name, f.threshold, f.modulus
            );
            stage(&f.name, &input, &args);
        }
        std::fs::write(dir.join("dvc.yaml"), yaml)?;
        let dvc = Dvc { exe, dir, outs };
        dvc.timed(&["init", "--no-scm"])?;
        Ok(dvc)
    }

    /// Run `dvc args` in the project, without DVC's usage analytics.
    fn timed(&self, args: &[&str]) -> Result<(f64, String)> {
        timed(
            Command::new(&self.exe)
                .args(args)
                .current_dir(&self.dir)
                .env("DVC_NO_ANALYTICS", "1"),
        )
    }

    /// Rows and bytes over the stages' outputs.
    fn outputs(&self) -> Result<(u64, u64)> {
        let (mut rows, mut bytes) = (0, 0);
        for p in &self.outs {
            let file = std::fs::File::open(p).with_context(|| p.display().to_string())?;
            bytes += file.metadata()?.len();
            rows += ParquetReader::new(file).num_rows()? as u64;
        }
        Ok((rows, bytes))
    }
}

/// The folder holding the sources and `bench.toml` of a `nodes`-node recipe: `dir`, or a
/// temporary folder (kept alive by the returned guard).
pub(crate) fn recipe_folder(
    dir: Option<&std::path::Path>,
    nodes: usize,
    sources: usize,
    rows: usize,
) -> Result<(Option<tempfile::TempDir>, std::path::PathBuf)> {
    ensure!(
        sources >= 1 && nodes > sources,
        "need more nodes than sources"
    );
    let (tmp, dir) = match dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (None, d.to_path_buf())
        }
        None => {
            let tmp = tempfile::tempdir()?;
            let dir = tmp.path().to_path_buf();
            (Some(tmp), dir)
        }
    };
    write_sources(&dir, sources, rows)?;
    std::fs::write(dir.join("bench.toml"), recipe(nodes, sources))?;
    Ok((tmp, dir))
}

pub fn run(args: DagBenchArgs) -> Result<ExitCode> {
    let (_tmp, dir) = recipe_folder(args.dir.as_deref(), args.nodes, args.sources, args.rows)?;
    let exe = std::env::current_exe()?;
    let run = |extra: &[&str]| -> Result<(f64, String)> {
        timed(
            Command::new(&exe)
                .args(extra)
                .args(["--quiet", "--store", "store"])
                .current_dir(&dir),
        )
    };
    println!(
        "dag benchmark: {} nodes ({} imports of {} rows in total, {} filters), folder {}",
        args.nodes,
        args.sources,
        args.rows,
        args.nodes - args.sources,
        dir.display()
    );
    let dvc = match Dvc::find(args.dvc.as_deref()) {
        Some(exe) => {
            let dvc = Dvc::init(exe, &dir, args.nodes, args.sources)?;
            let (_, version) = dvc.timed(&["--version"])?;
            println!(
                "  peer: DVC {}, the same {} nodes as {} stages in {}",
                version.trim(),
                args.nodes,
                dvc.outs.len(),
                dvc.dir.display()
            );
            Some(dvc)
        }
        None => {
            println!(
                "  DVC peer skipped: no `dvc` on PATH (to compare: `pip install dvc pyarrow`, or --dvc PATH)"
            );
            None
        }
    };
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
    if let Some(dvc) = &dvc {
        let (cold, _) = dvc.timed(&["repro"])?;
        let (dvc_rows, dvc_bytes) = dvc.outputs()?;
        ensure!(
            dvc_rows == rows,
            "DVC's outputs hold {dvc_rows} rows, reasongen's tables {rows}"
        );
        println!(
            "  dvc repro, cold: {cold:>7.2} s  ({} outputs, {dvc_rows} rows, {:.1} MiB in the outputs)",
            dvc.outs.len(),
            dvc_bytes as f64 / 1048576.0
        );
    }
    let (noop, _) = run(&["run", "bench.toml"])?;
    println!(
        "  no-op re-run:    {noop:>7.3} s  (all {} nodes fresh)",
        args.nodes
    );
    if let Some(dvc) = &dvc {
        let (noop, out) = dvc.timed(&["repro"])?;
        ensure!(
            !out.contains("Running stage"),
            "a no-op `dvc repro` ran stages:\n{out}"
        );
        println!(
            "  dvc repro, no-op:{noop:>7.3} s  (all {} stages unchanged)",
            dvc.outs.len()
        );
    }
    let (plan, plan_out) = run(&["plan", "bench.toml"])?;
    ensure!(
        plan_out.contains(&format!("{} fresh, 0 stale", args.nodes)),
        "plan after a run is not all fresh:\n{plan_out}"
    );
    println!("  plan:            {plan:>7.3} s");
    if let Some(dvc) = &dvc {
        let (status, out) = dvc.timed(&["status"])?;
        ensure!(
            out.contains("up to date"),
            "`dvc status` after a repro:\n{out}"
        );
        println!("  dvc status:      {status:>7.3} s");
    }

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
