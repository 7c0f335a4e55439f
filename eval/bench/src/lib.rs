//! reasongen's benchmarks (`reasongen bench …`): commands that print figures, with the
//! peer tools (pyarrow, img2dataset, Curator, distilabel, transformers) run beside them
//! where one exists. BENCHMARKS.md records results and how to reproduce them. A crate
//! of its own, so that the binary stays a thin CLI; the benchmarks that run recipes
//! start the executable they run in (`reasongen`).

mod dag;
mod dp;
mod fetch;
mod images;
mod janus;
mod janus_parity;
mod llm;
mod memo;
mod optim;
mod patch_vq;
mod sft;
mod slurm_dag;
mod tables;
mod vq16;

use anyhow::Result;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// The item-level memo: inserts/s, lookups/s and memory at N keys.
    Memo(memo::MemoBenchArgs),
    /// The engine: a recipe of N nodes over M rows; cold run, no-op re-run and plan.
    Dag(dag::DagBenchArgs),
    /// Data-parallel SFT steps: world 1 against N thread ranks (with and without ZeRO-1)
    /// and N processes under mpirun: step time, tokens/s, optimizer bytes per rank.
    Dp(dp::DpBenchArgs),
    /// The Slurm executor: the `dag` recipe's nodes as Slurm jobs; the controller's
    /// wall per node beside Slurm's own submit-to-end latency, cold and no-op runs.
    SlurmDag(slurm_dag::SlurmDagBenchArgs),
    /// Parquet tables: write and read N rows with images, beside pyarrow.
    Tables(tables::TablesBenchArgs),
    /// The patch VQ: PSNR and judge accuracy on reconstructions per patch/codebook size.
    PatchVq(patch_vq::PatchVqBenchArgs),
    /// Image fetching: N images from a loopback server with latency through
    /// `images.fetch`, beside img2dataset on the same URLs.
    Fetch(fetch::FetchBenchArgs),
    /// Image preparation: N photo-like images decoded, resized, encoded and written,
    /// beside img2dataset.
    Images(images::ImagesBenchArgs),
    /// LLM requests: N requests at concurrency C through `rationale.plan` against a
    /// loopback server (instant, then with latency), beside Bespoke Curator and distilabel.
    Llm(llm::LlmBenchArgs),
    /// Janus-Pro generation: tokens/s and images/s of the tiny and shapes-world presets
    /// with random weights, plain and with a rationale, at a batch size and CFG weight.
    Janus(janus::JanusBenchArgs),
    /// Janus-Pro and VQ-16 against transformers' goldens on any device and dtype (BF16
    /// on a GPU): logit, pixel and greedy-code errors, checked against a tolerance.
    JanusParity(janus_parity::JanusParityBenchArgs),
    /// SFT: forward, backward and AdamW step time, tokens/s and MFU of the tiny, shapes
    /// or Janus-Pro-1B sizes with random weights (`scripts/sft_gpu_bench.py` puts
    /// PyTorch beside it).
    Sft(sft::SftBenchArgs),
    /// VQ-16 encoding at Janus-Pro's sizes: images/s per batch size on the CPU or a GPU.
    Vq16(vq16::Vq16BenchArgs),
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Memo(a) => memo::run(a),
        BenchCommand::Dag(a) => dag::run(a),
        BenchCommand::Dp(a) => dp::run(a),
        BenchCommand::SlurmDag(a) => slurm_dag::run(a),
        BenchCommand::Tables(a) => tables::run(a),
        BenchCommand::PatchVq(a) => patch_vq::run(a),
        BenchCommand::Fetch(a) => fetch::run(a),
        BenchCommand::Images(a) => images::run(a),
        BenchCommand::Llm(a) => llm::run(a),
        BenchCommand::Janus(a) => janus::run(a),
        BenchCommand::JanusParity(a) => janus_parity::run(a),
        BenchCommand::Sft(a) => sft::run(a),
        BenchCommand::Vq16(a) => vq16::run(a),
    }
}

/// Resident and peak resident memory of this process, in MiB (Linux).
pub fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
