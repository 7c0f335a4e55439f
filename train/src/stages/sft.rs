//! `model.sft`: supervised fine-tuning of a Janus-Pro model folder on an `sft_sample`
//! table ([`crate::sft`]); the artifact is the trained model folder (`config.json`,
//! `model.safetensors` in DeepSeek's layout, `tokenizer.json`), which `model.generate`
//! loads, with `metrics.jsonl`, `eval.jsonl` and `report/*.png` beside it.
//!
//! Crash resume: every `checkpoint_every` steps the whole training state (weights,
//! AdamW moments, step, data position, metrics, evaluations) is written as files into
//! the store's checkpoint folder of the node run ([`crate::core::harness`]); a run of
//! the same node after a crash or kill continues from it and gives the same model as
//! an uninterrupted run.
//!
//! With `eval_prompts` (an `rl_prompt` table with shapes-GenEval records) and an image
//! `tokenizer` bound, every `eval.every` steps and after the last the model as it
//! stands draws the first `eval.max_prompts` prompts and the exact shapes judge scores
//! them ([`crate::held_out`]).
//!
//! Data-parallel (`data_parallel`, the ranks launched by `mpirun` or `srun`): every
//! rank runs this stage; rank 0 alone evaluates, writes checkpoints and publishes the
//! artifact, and the other ranks exit the process with success once all are done.

use crate::core::harness::{Schedule, Trainer as _, fit};
use crate::core::params::Params;
use crate::core::report::write_run;
use crate::dist::connect;
use crate::dist::world::World;
use crate::held_out::HeldOut;
use crate::janus::config::JanusConfig;
use crate::janus::load::dtype_for;
use crate::janus::text::TextTokenizer;
use crate::sft::config::SftConfig;
use crate::sft::trainer::{PLOTS, Trainer, examples};
use candle_core::Device;
use datasets::table::TableReader;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Resources, Stage,
    StageContext, StageError,
};
use schemas::sft_sample::SftSample;
use serde_json::{Value, json};

fn err(e: impl std::fmt::Display) -> StageError {
    StageError::msg(e.to_string())
}

/// Train (see the module documentation).
fn train(config: &SftConfig, ctx: &StageContext) -> Result<Output, StageError> {
    let samples = ctx.input("samples")?;
    let model_in = ctx.input("model")?;
    let device = config
        .device
        .open_granted(&ctx.devices)
        .map_err(StageError::msg)?;
    let model_config = JanusConfig::from_file(&model_in.dir.join("config.json")).map_err(err)?;
    let vq_config = model_config.clone();
    let tokenizer_path = model_in.dir.join("tokenizer.json");
    let text = TextTokenizer::from_file(&tokenizer_path).map_err(err)?;
    let mut rows = Vec::new();
    for batch in TableReader::open(&samples.dir)?.rows::<SftSample>()? {
        rows.extend(batch?);
    }
    let (examples, skipped) =
        examples(rows, &text, config, model_config.image_vocab).map_err(err)?;
    ctx.count("samples", examples.len() as u64);
    if skipped > 0 {
        ctx.count("skipped_long", skipped as u64);
        ctx.log(format!(
            "{skipped} samples are longer than max_length {} and are left out",
            config.max_length
        ));
    }
    let params = Params::from_checkpoint(&model_in.dir, &model_config, &device)
        .map_err(|e| err(e).context("loading the model"))?;
    ctx.log(format!(
        "{} parameters, {} samples, {} steps of {} × {} sequences on {:?}",
        params.count(),
        examples.len(),
        config.steps,
        config.batch_size,
        config.grad_accum,
        device
    ));
    let world = World::detect().map_err(err)?;
    let replica =
        connect(&config.data_parallel, world, &ctx.scratch_dir.join("nccl")).map_err(err)?;
    let mut trainer = Trainer::replicated(
        config.clone(),
        model_config,
        text,
        params,
        examples,
        dtype_for(&device),
        replica,
    )
    .map_err(err)?;
    // The held-out evaluation needs the image tokenizer that decodes its codes.
    let held_out = match ctx.inputs("tokenizer").first() {
        Some(t) => {
            let images = crate::tokenizer::load(&t.dir).map_err(StageError::msg)?;
            HeldOut::of_node(
                ctx,
                &config.eval,
                config.rationale,
                config.device,
                config.seed,
                images.into(),
            )?
        }
        None => None,
    };
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
    let (tokens, positions, seconds) = metrics.iter().fold((0, 0, 0.0), |(t, p, s), m| {
        (t + m.tokens, p + m.positions, s + m.seconds)
    });
    let last = metrics.last();
    Ok(Output {
        rows: None,
        schema: None,
        meta: json!({
            "steps": trainer.step(),
            "final_loss": last.map(|m| m.loss),
            "final_text_loss": last.and_then(|m| m.text_loss),
            "final_image_loss": last.and_then(|m| m.image_loss),
            "tokens": tokens,
            "tokens_per_s": tokens as f64 / seconds.max(1e-9),
            "padding_fraction": 1.0 - tokens as f64 / positions.max(1) as f64,
            "skipped_long": skipped,
            "rationale": config.rationale,
            "activation_checkpointing": config.activation_checkpointing,
            "lora": config.lora,
            "memory": crate::core::harness::Trainer::stepper(&trainer).memory(),
            "eval": evals.last().cloned().unwrap_or(Value::Null),
        }),
    })
}

pub struct Sft;

impl Stage for Sft {
    type Config = SftConfig;
    const KIND: &'static str = "model.sft";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Supervised fine-tuning of a Janus-Pro model on SFT samples: rationale then image (ReasonGen-R1), or image only.";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "samples",
            kinds: &[ArtifactKind::Table],
            schema: Some("sft_sample"),
            arity: Arity::One,
            doc: "the SFT samples, with image codes",
        },
        InputSpec {
            name: "model",
            kinds: &[ArtifactKind::Model],
            schema: None,
            arity: Arity::One,
            doc: "the Janus-Pro model folder to start from (config.json, weights, tokenizer.json)",
        },
        InputSpec {
            name: "eval_prompts",
            kinds: &[ArtifactKind::Table],
            schema: Some("rl_prompt"),
            arity: Arity::Optional,
            doc: "held-out prompts with shapes-GenEval records, drawn and judged during training",
        },
        InputSpec {
            name: "tokenizer",
            kinds: &[ArtifactKind::Model],
            schema: None,
            arity: Arity::Optional,
            doc: "the image tokenizer that decodes the evaluation's codes",
        },
    ];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Model));
    const USES_SEED: bool = false;

    fn resources(config: &SftConfig) -> Resources {
        let gpu = config.device.wants_gpu();
        Resources {
            threads: if gpu {
                1
            } else {
                config.threads.unwrap_or(u32::MAX)
            },
            gpus: gpu as u32,
            ..Resources::default()
        }
    }

    fn ranks(config: &SftConfig) -> u32 {
        u32::try_from(config.data_parallel.ranks).unwrap_or(u32::MAX)
    }

    fn validate(config: &SftConfig, _: &pipeline::Bindings) -> Result<(), String> {
        config.check()
    }

    async fn run(&self, config: SftConfig, ctx: StageContext) -> Result<Output, StageError> {
        super::on_threads(ctx.threads, move || train(&config, &ctx)).await
    }
}
