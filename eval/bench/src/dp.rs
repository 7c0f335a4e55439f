//! The data-parallel benchmark and check: SFT steps of the tiny or mini preset with
//! random weights on synthetic micro-batches, at world 1, then N thread ranks without
//! and with ZeRO-1, then N processes under `mpirun` (Open MPI) when it is installed.
//! Prints step time, tokens/s, the optimiser-state bytes per rank and each run's largest
//! weight difference from world 1 (the update must be the same). Under `mpirun` each
//! process is one rank (`train::dist::world`); rank 0 writes its weights for the
//! launching process to compare.

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;
use train::core::batch::{Batch, Kind, Sequence, Weights};
use train::core::optim::AdamWConfig;
use train::core::params::Params;
use train::core::stepper::Stepper;
use train::dist::collective::Collective;
use train::dist::mpi::Mpi;
use train::dist::world::World;
use train::dist::{Replica, share, threads};
use train::janus::config::JanusConfig;
use train::sft::data::draw;
use train::sft::loss::loss as sft_loss;

#[derive(clap::Args, Clone)]
pub struct DpBenchArgs {
    /// `tiny` or `mini`.
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Ranks of the thread and mpirun runs.
    #[arg(long, default_value_t = 2)]
    ranks: usize,
    /// Micro-batches per step (dealt to the ranks) and sequences in each.
    #[arg(long, default_value_t = 4)]
    micro_batches: usize,
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 96)]
    seq: usize,
    /// Steps; the first is not timed.
    #[arg(long, default_value_t = 4)]
    steps: usize,
    /// Skip the run under mpirun.
    #[arg(long)]
    no_mpirun: bool,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// (Under mpirun) the initial weights to start from, and where rank 0 writes its
    /// weights and figures.
    #[arg(long, hide = true)]
    init: Option<PathBuf>,
    #[arg(long, hide = true)]
    out: Option<PathBuf>,
    #[arg(long, hide = true)]
    zero: Option<u8>,
}

fn preset(name: &str) -> Result<JanusConfig> {
    Ok(match name {
        "tiny" => JanusConfig::tiny(1024, 256),
        "mini" => JanusConfig::mini(1024, 256),
        other => bail!("preset `{other}`: tiny or mini"),
    })
}

/// Every micro-batch of a step (the same each step).
fn micro_batches(config: &JanusConfig, args: &DpBenchArgs) -> Result<Vec<Batch>> {
    let (seq, vocab) = (args.seq, config.language.vocab_size as u64);
    let text = seq / 2;
    let weights = Weights {
        text: 2.0,
        image: 1.0,
        begin_of_image: 0.0,
    };
    (0..args.micro_batches)
        .map(|m| {
            let rows: Vec<Sequence> = (0..args.batch)
                .map(|r| {
                    // Micro-batches of different lengths, as length bucketing makes them.
                    let len = seq - 4 * m;
                    let ids = (0..len)
                        .map(|j| {
                            if j < text {
                                (draw(&(m, r, j, "text")) % vocab) as u32
                            } else {
                                (draw(&(m, r, j, "image")) % config.image_vocab as u64) as u32
                            }
                        })
                        .collect();
                    let is_image: Vec<bool> = (0..len).map(|j| j >= text).collect();
                    let labels = (1..len)
                        .map(|j| Some(if is_image[j] { Kind::Image } else { Kind::Text }))
                        .collect();
                    Sequence {
                        ids,
                        is_image,
                        labels,
                    }
                })
                .collect();
            Ok(Batch::new(&rows, 0, weights, &candle_core::Device::Cpu)?)
        })
        .collect()
}

/// What one rank's run gives.
struct Outcome {
    weights: Vec<f32>,
    seconds_per_step: f64,
    state_bytes: usize,
}

/// `steps` steps from `init` as one rank of `replica` (alone: `None`).
fn train(
    config: &JanusConfig,
    init: &Path,
    batches: &[Batch],
    steps: usize,
    replica: Option<Replica>,
) -> Result<Outcome> {
    let params = Params::from_checkpoint(init, config, &candle_core::Device::Cpu)?;
    let adamw = AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.01,
        moments: Default::default(),
        seed: 0,
    };
    let mut stepper = Stepper::replicated(
        config.clone(),
        params,
        adamw,
        candle_core::DType::F32,
        replica,
    )?;
    let (rank, world) = stepper.rank_and_world();
    let mine: Vec<&Batch> = share(batches, rank, world).collect();
    let scale = 1.0 / batches.len() as f64;
    let mut timed = 0.0;
    for step in 0..steps {
        let start = Instant::now();
        stepper.update(&mine, 1e-3, 1.0, |model, batch| {
            Ok(sft_loss(model, batch, scale)?.loss)
        })?;
        stepper.barrier()?;
        if step > 0 {
            timed += start.elapsed().as_secs_f64();
        }
    }
    let weights = stepper
        .params()
        .vars
        .iter()
        .map(|v| Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?))
        .collect::<Result<Vec<_>>>()?
        .concat();
    Ok(Outcome {
        weights,
        seconds_per_step: timed / (steps.max(2) - 1) as f64,
        state_bytes: stepper.memory().optimizer_state_bytes,
    })
}

/// The ranks' outcomes, as threads of this process.
fn on_threads(
    world: usize,
    zero1: bool,
    run: impl Fn(Option<Replica>) -> Result<Outcome> + Sync,
) -> Result<Vec<Outcome>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = threads::group(world)
            .into_iter()
            .map(|rank| {
                let run = &run;
                s.spawn(move || {
                    let comm: Arc<dyn Collective> = Arc::new(rank);
                    run(Some(Replica { comm, zero1 }))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a rank panicked"))?)
            .collect()
    })
}

fn max_difference(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

/// One process of an `mpirun` group: train, and rank 0 writes weights and figures.
fn mpi_rank(args: &DpBenchArgs, config: &JanusConfig, batches: &[Batch]) -> Result<()> {
    let init = args
        .init
        .as_deref()
        .context("--init (set by the launching run)")?;
    let comm: Arc<dyn Collective> = Arc::new(Mpi::init()?);
    let replica = Replica {
        comm: comm.clone(),
        zero1: args.zero == Some(1),
    };
    let outcome = train(config, init, batches, args.steps, Some(replica))?;
    if comm.rank() == 0
        && let Some(out) = &args.out
    {
        let bytes: Vec<u8> = outcome
            .weights
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        std::fs::write(out.with_extension("weights"), bytes)?;
        let figures = json!({"seconds_per_step": outcome.seconds_per_step, "state_bytes": outcome.state_bytes});
        std::fs::write(out, figures.to_string())?;
    }
    Ok(())
}

/// The same run under `mpirun -n ranks` at ZeRO stage `zero`: (seconds per step, rank
/// 0's state bytes, weights).
fn under_mpirun(
    args: &DpBenchArgs,
    init: &Path,
    dir: &Path,
    zero: u8,
) -> Result<(f64, usize, Vec<f32>)> {
    let out = dir.join(format!("mpi-zero{zero}.json"));
    let exe = std::env::current_exe()?;
    let status = Command::new("mpirun")
        .args([
            "-n",
            &args.ranks.to_string(),
            "--allow-run-as-root",
            "--oversubscribe",
        ])
        .arg(exe)
        .args(["bench", "dp", "--preset", &args.preset])
        .args(["--micro-batches", &args.micro_batches.to_string()])
        .args([
            "--batch",
            &args.batch.to_string(),
            "--seq",
            &args.seq.to_string(),
        ])
        .args([
            "--steps",
            &args.steps.to_string(),
            "--zero",
            &zero.to_string(),
        ])
        .arg("--init")
        .arg(init)
        .arg("--out")
        .arg(&out)
        .status()
        .context("starting mpirun")?;
    if !status.success() {
        bail!("mpirun -n {} failed: {status}", args.ranks);
    }
    let figures: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    let bytes = std::fs::read(out.with_extension("weights"))?;
    let weights = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((
        figures["seconds_per_step"].as_f64().unwrap_or(f64::NAN),
        figures["state_bytes"].as_u64().unwrap_or(0) as usize,
        weights,
    ))
}

fn mpirun_present() -> bool {
    Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(args: DpBenchArgs) -> Result<ExitCode> {
    let config = preset(&args.preset)?;
    if args.ranks == 0
        || args.micro_batches == 0
        || args.batch == 0
        || args.seq < 4 * args.micro_batches + 4
    {
        bail!(
            "--ranks, --micro-batches and --batch must be at least 1, and --seq above 4 × micro-batches + 4"
        );
    }
    let batches = micro_batches(&config, &args)?;
    if World::detect()?.size > 1 {
        mpi_rank(&args, &config, &batches)?;
        return Ok(ExitCode::SUCCESS);
    }
    let dir = tempfile::tempdir()?;
    let init = dir.path().join("init.safetensors");
    Params::random(&config, &candle_core::Device::Cpu)?.save(
        &init,
        candle_core::DType::F32,
        None,
    )?;
    let tokens: usize = batches.iter().map(|b| b.tokens).sum();
    let run = |replica| train(&config, &init, &batches, args.steps, replica);
    let single = run(None)?;
    let threads0 = on_threads(args.ranks, false, run)?;
    let threads1 = on_threads(args.ranks, true, run)?;
    let diff = |o: &[Outcome]| {
        o.iter()
            .map(|o| max_difference(&single.weights, &o.weights))
            .fold(0.0, f64::max)
    };
    let mut rows = vec![
        ("world 1", single.seconds_per_step, single.state_bytes, 0.0),
        (
            "threads",
            threads0[0].seconds_per_step,
            threads0[0].state_bytes,
            diff(&threads0),
        ),
        (
            "threads, ZeRO-1",
            threads1[0].seconds_per_step,
            threads1.iter().map(|o| o.state_bytes).max().unwrap_or(0),
            diff(&threads1),
        ),
    ];
    let mpi = if args.no_mpirun {
        None
    } else if mpirun_present() {
        for (name, zero) in [("mpirun", 0), ("mpirun, ZeRO-1", 1)] {
            let (seconds, state, weights) = under_mpirun(&args, &init, dir.path(), zero)?;
            rows.push((
                name,
                seconds,
                state,
                max_difference(&single.weights, &weights),
            ));
        }
        Some(true)
    } else {
        Some(false)
    };
    let total = single.weights.len();
    if args.json {
        let runs: Vec<_> = rows
            .iter()
            .map(|(name, s, bytes, d)| json!({"run": name, "seconds_per_step": s, "tokens_per_s": tokens as f64 / s, "state_bytes_per_rank": bytes, "max_weight_difference": d}))
            .collect();
        let out = json!({"preset": args.preset, "ranks": args.ranks, "parameters": total, "tokens_per_step": tokens, "mpirun": mpi, "runs": runs});
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} preset, {total} parameters, {} micro-batches × {} sequences ({tokens} tokens) a step, {} ranks",
        args.preset, args.micro_batches, args.batch, args.ranks
    );
    println!(
        "{:<16} {:>10} {:>10} {:>16} {:>12}",
        "run", "s/step", "tokens/s", "optimizer B/rank", "max |Δw|"
    );
    for (name, s, bytes, d) in &rows {
        println!(
            "{name:<16} {s:>10.3} {:>10.0} {bytes:>16} {d:>12.2e}",
            tokens as f64 / s
        );
    }
    if mpi == Some(false) {
        println!("mpirun: not installed (Debian: apt-get install openmpi-bin); skipped");
    }
    Ok(ExitCode::SUCCESS)
}
