//! `reasongen`: the command line. A thin layer over the crates: it parses arguments,
//! opens the store, and prints what the engine returns.

mod convert;
mod docs;
mod exec;
mod export;
mod generate;
mod inspect;
mod maintain;
mod report;
mod run;
mod serve;
mod trace;

use clap::{Parser, Subcommand};
use pipeline::Registry;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "reasongen",
    version,
    about = "Chain-of-thought datasets for autoregressive text-to-image models, trained and evaluated as one reproducible DAG."
)]
struct Cli {
    /// The artifact store (default: `.reasongen` in the current folder, or $REASONGEN_STORE):
    /// a folder, or `s3://bucket/prefix` (settings from the AWS_* variables).
    #[arg(
        long,
        global = true,
        env = "REASONGEN_STORE",
        default_value = ".reasongen"
    )]
    store: PathBuf,
    /// Print failures only.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a recipe: every stale node, skipping fresh ones.
    Run(run::RunArgs),
    /// Run one node of a run from its description in the store (what `--executor
    /// slurm` jobs run).
    ExecNode(exec::ExecNodeArgs),
    /// Show which nodes of a recipe are fresh or stale, and why. Runs nothing.
    Plan(run::PlanArgs),
    /// Summarise a run (the latest by default): nodes, durations, cached or run, counters.
    Status(inspect::StatusArgs),
    /// Show an artifact's manifest and its lineage up to the sources.
    Show(inspect::ShowArgs),
    /// The chain from a score or an image back to the model, its training runs, the SFT
    /// samples and the rationale rows (with their LLM request keys) behind it.
    Trace(trace::TraceArgs),
    /// Write one self-contained HTML page over a run or a node's lineage: scores with
    /// intervals and judges, image grids with verdicts, training curves, dataset card.
    Report(report::ReportArgs),
    /// Write a node's table as a dataset release (Hugging Face layout), or copy a release.
    Export(export::ExportArgs),
    /// Re-hash every artifact and check every key and ref.
    Verify(maintain::VerifyArgs),
    /// Remove what no ref or key reaches (a dry run unless --delete).
    Gc(maintain::GcArgs),
    /// List the stage kinds with their inputs, output and config keys.
    Stages(docs::StagesArgs),
    /// Print the JSON Schema of recipe files (for editor completion and checking).
    Schema,
    /// Write a commented starter recipe.
    Init(docs::InitArgs),
    /// Generate rationales and images for prompts with a Janus-Pro model, into a folder.
    Generate(generate::GenerateArgs),
    /// Convert a PyTorch `.bin` Janus-Pro checkpoint to safetensors (same layout).
    Convert(convert::ConvertArgs),
    /// Run a server the recipes can use (the shapes world's judge model).
    #[command(subcommand)]
    Serve(serve::ServeCommand),
    /// Benchmarks that print figures (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Every stage kind this binary knows.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    stages::register(&mut r);
    train::stages::register(&mut r);
    eval::register(&mut r);
    r
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`reasongen status | head`), as command-line tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(&cli.store, cli.quiet, args),
        Command::ExecNode(args) => exec::exec_node(&cli.store, cli.quiet, args),
        Command::Plan(args) => run::plan(&cli.store, args),
        Command::Status(args) => inspect::status(&cli.store, args),
        Command::Show(args) => inspect::show(&cli.store, args),
        Command::Trace(args) => trace::trace(&cli.store, args),
        Command::Report(args) => report::report(&cli.store, args),
        Command::Export(args) => export::export(&cli.store, args),
        Command::Verify(args) => maintain::verify(&cli.store, args),
        Command::Gc(args) => maintain::gc(&cli.store, args),
        Command::Stages(args) => docs::stages(args),
        Command::Schema => docs::schema(),
        Command::Init(args) => docs::init(args),
        Command::Generate(args) => generate::generate(cli.quiet, args),
        Command::Convert(args) => convert::convert(cli.quiet, args),
        Command::Serve(s) => serve::serve(s),
        Command::Bench(b) => bench::run(b),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// glibc's malloc returns large freed blocks to the kernel at once (mmap threshold) and
/// trims the heap top eagerly; candle allocates a fresh buffer for every tensor op, so
/// CPU training spent about a quarter of its time in page faults and zeroing new pages
/// (BENCHMARKS.md, "SFT training step"). Keeping freed memory for reuse makes the tiny
/// model's steps about 1.5× faster; the cost is a resident size that stays at its peak.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        // 32 MiB is glibc's upper limit on 64-bit; larger buffers stay mmapped.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
