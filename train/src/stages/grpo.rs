//! `model.grpo`: GRPO of a Janus-Pro model folder on an `rl_prompt` table
//! ([`crate::grpo`]); the artifact is the trained model folder (`config.json`,
//! `model.safetensors`, `tokenizer.json`) with `metrics.jsonl`, `eval.jsonl`,
//! `report/*.png` and `rollouts/` (the `rollout` table of every trajectory sampled,
//! with its reward, the judge's answer and request key, its advantage and log-prob).
//!
//! The image tokenizer decodes the rollouts' codes for the reward: the `tokenizer`
//! input when bound (the shapes world's patch VQ), else the model's own VQ-16. Crash
//! resume as `model.sft`: checkpoints as files every `checkpoint_every` steps, the
//! judge's answers in the memo (no image is judged twice), the same rollouts drawn
//! again after the checkpoint.
//!
//! Data-parallel (`data_parallel`, the ranks launched by `mpirun` or `srun`): every
//! rank runs this stage and draws its share of the rollouts; rank 0 alone opens the
//! reward, evaluates, writes checkpoints and rollouts and publishes the artifact, and
//! the other ranks exit the process with success once all are done.

use crate::core::harness::{Schedule, Trainer as _, fit};
use crate::core::params::Params;
use crate::core::report::write_run;
use crate::dist::connect;
use crate::dist::world::World;
use crate::grpo::config::GrpoConfig;
use crate::grpo::reward::Rewarder;
use crate::grpo::trainer::{PLOTS, Prompt, Setup, Trainer};
use crate::held_out::HeldOut;
use crate::janus::checkpoint::Checkpoint;
use crate::janus::config::JanusConfig;
use crate::janus::load::dtype_for;
use crate::janus::text::TextTokenizer;
use crate::janus::vq16::{CHECKPOINT_PREFIX, Vq16};
use crate::tokenizer::ImageTokenizer;
use candle_core::Device;
use datasets::shapes::Metadata;
use datasets::table::{ShardOptions, ShardWriter, TableReader};
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Resources, Stage,
    StageContext, StageError,
};
use schemas::Row;
use schemas::rl_prompt::RlPrompt;
use schemas::rollout::Rollout;
use serde_json::{Value, json};
use std::sync::Arc;

fn err(e: impl std::fmt::Display) -> StageError {
    StageError::msg(e.to_string())
}

/// The prompts of the `prompts` table, with their records when the reward needs them.
fn prompts(ctx: &StageContext, records: bool) -> Result<Vec<Prompt>, StageError> {
    let mut out = Vec::new();
    for rows in TableReader::open(&ctx.input("prompts")?.dir)?.rows::<RlPrompt>()? {
        for p in rows? {
            let record = match (&p.metadata, records) {
                (Some(text), true) => Some(
                    Metadata::from_json(text)
                        .map_err(|e| StageError::msg(format!("prompt `{}`: {e}", p.id)))?,
                ),
                (None, true) => {
                    return Err(StageError::msg(format!(
                        "prompt `{}` has no shapes-GenEval record, which the shapes reward needs",
                        p.id
                    )));
                }
                (_, false) => None,
            };
            out.push(Prompt {
                id: p.id,
                text: p.prompt,
                record,
            });
        }
    }
    Ok(out)
}

/// The image tokenizer: the `tokenizer` input, else the model's VQ-16.
fn image_tokenizer(
    ctx: &StageContext,
    config: &JanusConfig,
    device: &candle_core::Device,
) -> Result<Arc<dyn ImageTokenizer>, StageError> {
    if let Some(t) = ctx.inputs("tokenizer").first() {
        return Ok(crate::tokenizer::load(&t.dir)
            .map_err(StageError::msg)?
            .into());
    }
    let dir = &ctx.input("model")?.dir;
    let vq = Checkpoint::open(dir)
        .and_then(|c| {
            Arc::new(c).build(dtype_for(device), device, |vb| {
                Vq16::new(config.vq.clone(), vb.pp(CHECKPOINT_PREFIX))
            })
        })
        .map_err(|e| err(e).context("loading the model's VQ-16"))?;
    Ok(Arc::new(vq))
}

/// Train (see the module documentation).
fn train(
    config: &GrpoConfig,
    ctx: &Arc<StageContext>,
    handle: &tokio::runtime::Handle,
) -> Result<Output, StageError> {
    let model_in = ctx.input("model")?;
    let device = config
        .device
        .open_granted(&ctx.devices)
        .map_err(StageError::msg)?;
    let model_config = JanusConfig::from_file(&model_in.dir.join("config.json")).map_err(err)?;
    let vq_config = model_config.clone();
    let tokenizer_path = model_in.dir.join("tokenizer.json");
    let text = TextTokenizer::from_file(&tokenizer_path).map_err(err)?;
    let images = image_tokenizer(ctx, &model_config, &device)?;
    if images.codebook_size() as usize != model_config.image_vocab {
        return Err(StageError::msg(format!(
            "the image tokenizer has {} codes, the model's image heads know {}",
            images.codebook_size(),
            model_config.image_vocab
        )));
    }
    let prompts = prompts(ctx, config.reward.needs_records())?;
    let params = Params::from_checkpoint(&model_in.dir, &model_config, &device)
        .map_err(|e| err(e).context("loading the model"))?;
    let trajectories = (config.steps * config.prompts_per_step * config.group_size) as u64;
    let world = World::detect().map_err(err)?;
    let replica =
        connect(&config.data_parallel, world, &ctx.scratch_dir.join("nccl")).map_err(err)?;
    // Only the root scores; the other ranks take its rewards.
    let rewarder = if replica.as_ref().is_none_or(|r| r.comm.rank() == 0) {
        Some(Rewarder::open(&config.reward, ctx, trajectories, handle)?)
    } else {
        None
    };
    ctx.log(format!(
        "{} parameters, {} prompts, {} steps of {} prompts × {} trajectories on {:?}",
        params.count(),
        prompts.len(),
        config.steps,
        config.prompts_per_step,
        config.group_size,
        device
    ));
    let rollouts = ctx.checkpoints().work_dir()?.join("rollouts");
    std::fs::create_dir_all(&rollouts)?;
    let mut trainer = Trainer::new(Setup {
        config: config.clone(),
        model_config,
        text,
        images: images.clone(),
        params,
        prompts,
        rewarder,
        dtype: dtype_for(&device),
        model_id: model_in.digest.short(),
        rollouts,
        replica,
    })
    .map_err(err)?;
    let held_out = HeldOut::of_node(
        ctx,
        &config.eval,
        config.rationale,
        config.device,
        config.seed,
        images,
    )?;
    let schedule = Schedule {
        steps: config.steps,
        log_every: config.log_every,
        eval_every: config.eval.every,
        checkpoint_every: config.checkpoint_every,
    };
    let evals = fit(&mut trainer, schedule, ctx, |trainer| match &held_out {
        Some(_) if !trainer.stepper().is_root() => Ok(Value::Null),
        None => Ok(Value::Null),
        Some(held_out) => {
            let step = trainer.step();
            let (model, text) = trainer.model().map_err(err)?;
            held_out.scores_at(step, model, text, ctx)
        }
    })?;
    trainer.stepper().barrier().map_err(err)?;
    if !trainer.stepper().is_root() {
        // The collective is released (MPI finalised) with the trainer.
        drop(trainer);
        std::process::exit(0);
    }
    let out = &ctx.out_dir;
    // The VQ-16 is not trained; the written model keeps the input's.
    let vq = Params::vq_from_checkpoint(&model_in.dir, &vq_config, &Device::Cpu)
        .map_err(|e| err(e).context("reading the model's VQ-16"))?;
    trainer
        .save_model(out, &tokenizer_path, vq.as_ref())
        .map_err(err)?;
    let metrics = trainer.metrics();
    write_run(out, metrics, &evals, |m| m.step, PLOTS).map_err(StageError::msg)?;
    let rows = merge_rollouts(
        &trainer.rollout_tables().map_err(err)?,
        &out.join("rollouts"),
    )?;
    let n = metrics.len().max(1) as f64;
    let sum = |f: fn(&crate::grpo::StepMetrics) -> f64| metrics.iter().map(f).sum::<f64>();
    Ok(Output {
        rows: None,
        schema: None,
        meta: json!({
            "steps": trainer.step(),
            "rollouts": rows,
            "final_reward_mean": metrics.last().map(|m| m.reward_mean),
            "reward_mean": sum(|m| m.reward_mean) / n,
            "rollout_seconds": sum(|m| m.rollout_seconds),
            "judge_wait_seconds": sum(|m| m.judge_wait_seconds),
            "update_seconds": sum(|m| m.update_seconds),
            "rationale": config.rationale,
            "activation_checkpointing": config.activation_checkpointing,
            "lora": config.lora,
            "memory": trainer.stepper().memory(),
            "eval": evals.last().cloned().unwrap_or(Value::Null),
        }),
    })
}

/// The steps' rollout tables as one table in `out`; returns its rows.
fn merge_rollouts(tables: &[std::path::PathBuf], out: &std::path::Path) -> Result<u64, StageError> {
    std::fs::create_dir_all(out)?;
    let mut writer = ShardWriter::new(
        out,
        Arc::new(Rollout::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    for dir in tables {
        for batch in TableReader::open(dir)?.rows::<Rollout>()? {
            writer.write(&schemas::to_batch(&batch?)?)?;
        }
    }
    Ok(writer.finish()?.rows)
}

pub struct Grpo;

impl Stage for Grpo {
    type Config = GrpoConfig;
    const KIND: &'static str = "model.grpo";
    const VERSION: u32 = 1;
    const DOC: &'static str = "GRPO of a Janus-Pro model (ReasonGen-R1's RL): rollouts in groups, a reward per image (VLM judge over HTTP, the exact shapes judge, or a sum), PPO-clip with adaptive entropy and dynamic sampling.";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "model",
            kinds: &[ArtifactKind::Model],
            schema: None,
            arity: Arity::One,
            doc: "the Janus-Pro model folder to start from (model.sft's, or a released one)",
        },
        InputSpec {
            name: "prompts",
            kinds: &[ArtifactKind::Table],
            schema: Some("rl_prompt"),
            arity: Arity::One,
            doc: "the RL prompts (with shapes-GenEval records for the shapes reward)",
        },
        InputSpec {
            name: "tokenizer",
            kinds: &[ArtifactKind::Model],
            schema: None,
            arity: Arity::Optional,
            doc: "the image tokenizer that decodes the rollouts (default: the model's VQ-16)",
        },
        InputSpec {
            name: "eval_prompts",
            kinds: &[ArtifactKind::Table],
            schema: Some("rl_prompt"),
            arity: Arity::Optional,
            doc: "held-out prompts with shapes-GenEval records, drawn and judged during training",
        },
    ];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Model));

    fn resources(config: &GrpoConfig) -> Resources {
        let gpu = config.device.wants_gpu();
        Resources {
            threads: if gpu {
                1
            } else {
                config.threads.unwrap_or(u32::MAX)
            },
            gpus: gpu as u32,
            llm_slots: judge_slots(&config.reward),
        }
    }

    fn ranks(config: &GrpoConfig) -> u32 {
        u32::try_from(config.data_parallel.ranks).unwrap_or(u32::MAX)
    }

    fn validate(config: &GrpoConfig, _: &pipeline::Bindings) -> Result<(), String> {
        config.check()
    }

    async fn run(&self, config: GrpoConfig, ctx: StageContext) -> Result<Output, StageError> {
        let handle = tokio::runtime::Handle::current();
        let ctx = Arc::new(ctx);
        super::on_threads(ctx.threads, move || {
            // Messages may quote what the judge's server sent; a server may echo a key.
            train(&config, &ctx, &handle).map_err(|e| {
                if e.is_cancelled() {
                    e
                } else {
                    StageError::msg(ctx.redact(&e.to_string()))
                }
            })
        })
        .await
    }
}

/// The LLM request slots the judge holds.
fn judge_slots(reward: &crate::grpo::reward::RewardConfig) -> u32 {
    use crate::grpo::reward::RewardConfig;
    match reward {
        RewardConfig::Shapes => 0,
        RewardConfig::Vlm(c) => c.limits.concurrency,
        RewardConfig::Sum(parts) => parts.iter().map(|p| judge_slots(&p.reward)).sum(),
    }
}
