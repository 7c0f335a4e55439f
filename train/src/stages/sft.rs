//! `model.sft`: supervised fine-tuning of a Janus-Pro model folder on an `sft_sample`
//! table ([`crate::sft`]); the artifact is the trained model folder (`config.json`,
//! `model.safetensors` in DeepSeek's layout, `tokenizer.json`), which `model.generate`
//! loads, with `metrics.jsonl`, `eval.jsonl` and `report/*.png` beside it.
//!
//! Crash resume: every `checkpoint_every` steps the whole training state (weights,
//! AdamW moments, step, data position, metrics) goes to the store's memo under the
//! node's run key; a run of the same node after a crash or kill continues from it and
//! gives the same model as an uninterrupted run. The record is emptied when the run
//! completes (the store then has the artifact).
//!
//! With `eval_prompts` (an `rl_prompt` table with shapes-GenEval records) and an image
//! `tokenizer` bound, every `eval.every` steps and after the last the model draws the
//! first `eval.max_prompts` prompts through `model.generate`'s code and the exact
//! shapes judge scores them (`eval.shapes_geneval`'s code).

use crate::janus::config::JanusConfig;
use crate::janus::load::dtype_for;
use crate::janus::text::TextTokenizer;
use crate::sft::config::SftConfig;
use crate::sft::params::Params;
use crate::sft::report::{metrics_jsonl, write_curves};
use crate::sft::trainer::{StepMetrics, Trainer, examples};
use crate::stages::generate::{Job, ModelInput, write_generations};
use datasets::shapes::Metadata;
use datasets::table::{ShardOptions, ShardWriter, TableReader};
use pipeline::memo::Memo;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, Digest, InputArtifact, InputSpec, Output, OutputDecl,
    Resources, Stage, StageContext, StageError,
};
use schemas::Row;
use schemas::eval_sample::EvalSample;
use schemas::rl_prompt::RlPrompt;
use schemas::sft_sample::SftSample;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn err(e: impl std::fmt::Display) -> StageError {
    StageError::msg(e.to_string())
}

/// The held-out evaluation of a run.
struct Evaluator {
    /// The subset table of prompts drawn.
    prompts: PathBuf,
    records: HashMap<String, Metadata>,
    tokenizer: InputArtifact,
}

impl Evaluator {
    /// The first `max` prompts of `input`, written to `dir` as a table.
    fn new(
        input: &InputArtifact,
        tokenizer: InputArtifact,
        max: usize,
        dir: &Path,
    ) -> Result<Evaluator, StageError> {
        let mut chosen = Vec::new();
        'read: for rows in TableReader::open(&input.dir)?.rows::<RlPrompt>()? {
            for p in rows? {
                if chosen.len() == max {
                    break 'read;
                }
                chosen.push(p);
            }
        }
        if chosen.is_empty() {
            return Err(StageError::msg(format!(
                "eval_prompts ({}) has no prompts",
                input.node
            )));
        }
        let mut records = HashMap::new();
        for p in &chosen {
            let text = p.metadata.as_deref().ok_or_else(|| {
                StageError::msg(format!(
                    "eval prompt `{}` has no shapes-GenEval metadata record",
                    p.id
                ))
            })?;
            let record = Metadata::from_json(text)
                .map_err(|e| StageError::msg(format!("eval prompt `{}`: {e}", p.id)))?;
            records.insert(p.id.clone(), record);
        }
        let prompts = dir.join("eval-prompts");
        std::fs::create_dir_all(&prompts)?;
        let mut writer = ShardWriter::new(
            &prompts,
            Arc::new(RlPrompt::SCHEMA.arrow_schema()),
            ShardOptions::default(),
        );
        writer.write(&schemas::to_batch(&chosen)?)?;
        writer.finish()?;
        Ok(Evaluator {
            prompts,
            records,
            tokenizer,
        })
    }

    /// Draw and judge with the model folder `model` (identified by `digest`).
    fn run(
        &self,
        config: &SftConfig,
        model: &Path,
        digest: &Digest,
        out: &Path,
    ) -> Result<Value, StageError> {
        let mut generate = config.eval.generate.clone();
        generate.rationale = config.rationale;
        generate.device = config.device;
        std::fs::create_dir_all(out)?;
        let job = Job {
            prompts: &self.prompts,
            model: ModelInput { dir: model, digest },
            tokenizer: Some(ModelInput {
                dir: &self.tokenizer.dir,
                digest: &self.tokenizer.digest,
            }),
            seed: config.seed,
            out_dir: out,
        };
        write_generations(&generate, job, None, &())?;
        let mut rows: Vec<EvalSample> = Vec::new();
        for batch in TableReader::open(out)?.rows::<EvalSample>()? {
            rows.extend(batch?);
        }
        let e = eval::shapes_geneval::evaluate(rows, &self.records, 1000, config.seed)?;
        let tasks: serde_json::Map<String, Value> = e
            .tasks
            .iter()
            .map(|(t, (score, n))| (t.to_string(), json!({"score": score, "prompts": n})))
            .collect();
        Ok(json!({
            "overall": e.overall,
            "overall_ci95": [e.interval.0, e.interval.1],
            "tasks": tasks,
            "images": e.summary.images,
            "prompts": e.summary.prompts,
        }))
    }
}

/// The memo records of a run: its checkpoint and its evaluations so far.
struct Resume {
    memo: Memo,
    checkpoint: Digest,
    evals: Digest,
}

impl Resume {
    fn new(memo: Memo, run_key: &Digest) -> Resume {
        Resume {
            memo,
            checkpoint: Digest::of_json(&("model.sft checkpoint", run_key.to_hex())),
            evals: Digest::of_json(&("model.sft evals", run_key.to_hex())),
        }
    }
}

fn log_line(m: &StepMetrics, steps: usize) -> String {
    let part = |name: &str, v: Option<f64>| v.map_or(String::new(), |v| format!(", {name} {v:.3}"));
    format!(
        "step {}/{steps}: loss {:.4}{}{}, lr {:.2e}, grad norm {:.3}, {:.0} tokens/s, padding {:.1}%",
        m.step,
        m.loss,
        part("text CE", m.text_loss),
        part("image CE", m.image_loss),
        m.lr,
        m.grad_norm,
        m.tokens_per_s,
        100.0 * (1.0 - m.tokens as f64 / m.positions.max(1) as f64)
    )
}

/// Train (see the module documentation).
fn train(config: &SftConfig, ctx: &StageContext) -> Result<Output, StageError> {
    let samples = ctx.input("samples")?;
    let model_in = ctx.input("model")?;
    let device = config.device.open().map_err(StageError::msg)?;
    let model_config = JanusConfig::from_file(&model_in.dir.join("config.json")).map_err(err)?;
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
    let mut trainer = Trainer::new(
        config.clone(),
        model_config,
        text,
        params,
        examples,
        dtype_for(&device),
    )
    .map_err(err)?;
    let resume = Resume::new(ctx.memo_uncounted("model.sft")?, &ctx.run_key);
    if let Some(bytes) = resume.memo.get(&resume.checkpoint)?
        && !bytes.is_empty()
    {
        trainer.restore(&bytes).map_err(err)?;
        ctx.log(format!(
            "resumed from the checkpoint of step {}",
            trainer.step()
        ));
    }
    let mut evals: Vec<Value> = resume.memo.get_json(&resume.evals)?.unwrap_or_default();
    let evaluator = match (
        ctx.inputs("eval_prompts").first(),
        ctx.inputs("tokenizer").first(),
    ) {
        (Some(prompts), Some(tokenizer)) => Some(Evaluator::new(
            prompts,
            tokenizer.clone(),
            config.eval.max_prompts,
            &ctx.scratch_dir,
        )?),
        _ => None,
    };
    let evaluate = |trainer: &Trainer| -> Result<Value, StageError> {
        let Some(evaluator) = &evaluator else {
            return Ok(Value::Null);
        };
        let step = trainer.step();
        let dir = ctx.scratch_dir.join(format!("model-{step}"));
        trainer.save_model(&dir, &tokenizer_path).map_err(err)?;
        let digest = Digest::of_json(&("model.sft eval", ctx.run_key.to_hex(), step));
        let out = ctx.scratch_dir.join(format!("eval-{step}"));
        let mut result = evaluator.run(config, &dir, &digest, &out)?;
        result["step"] = json!(step);
        let _ = std::fs::remove_dir_all(&dir);
        ctx.log(format!(
            "step {step}: shapes-GenEval overall {:.3} (95% CI {:.3}–{:.3}) on {} prompts",
            result["overall"].as_f64().unwrap_or(0.0),
            result["overall_ci95"][0].as_f64().unwrap_or(0.0),
            result["overall_ci95"][1].as_f64().unwrap_or(0.0),
            result["prompts"]
        ));
        Ok(result)
    };
    ctx.progress.set_total(config.steps as u64, "steps");
    ctx.progress.inc(trainer.step() as u64);
    while trainer.step() < config.steps {
        ctx.check_cancelled()?;
        let m = trainer.train_step().map_err(err)?;
        ctx.progress.inc(1);
        ctx.count("steps", 1);
        ctx.count("tokens", m.tokens as u64);
        if m.step % config.log_every.max(1) == 0 || m.step == 1 || m.step == config.steps {
            ctx.log(log_line(&m, config.steps));
            ctx.emit_counters();
        }
        if !m.loss.is_finite() {
            return Err(StageError::msg(format!(
                "the loss is {} at step {}",
                m.loss, m.step
            )));
        }
        let last = m.step == config.steps;
        if config.eval.every > 0 && m.step % config.eval.every == 0 && !last {
            let result = evaluate(&trainer)?;
            if !result.is_null() {
                evals.push(result);
                resume.memo.put_json(&resume.evals, &evals)?;
            }
        }
        if config.checkpoint_every > 0 && m.step % config.checkpoint_every == 0 && !last {
            resume
                .memo
                .put(&resume.checkpoint, &trainer.checkpoint().map_err(err)?)?;
        }
    }
    let final_eval = evaluate(&trainer)?;
    if !final_eval.is_null() {
        evals.push(final_eval.clone());
    }
    let out = &ctx.out_dir;
    trainer.save_model(out, &tokenizer_path).map_err(err)?;
    let metrics = trainer.metrics();
    std::fs::write(out.join("metrics.jsonl"), metrics_jsonl(metrics))?;
    if !evals.is_empty() {
        let lines: Vec<String> = evals.iter().map(Value::to_string).collect();
        std::fs::write(out.join("eval.jsonl"), lines.join("\n") + "\n")?;
    }
    write_curves(metrics, &out.join("report")).map_err(StageError::msg)?;
    let (tokens, positions, seconds) = metrics.iter().fold((0, 0, 0.0), |(t, p, s), m| {
        (t + m.tokens, p + m.positions, s + m.seconds)
    });
    let last = metrics.last();
    resume.memo.put(&resume.checkpoint, &[])?;
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
            "eval": final_eval,
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

    fn validate(config: &SftConfig, _: &pipeline::Bindings) -> Result<(), String> {
        config.check()
    }

    async fn run(&self, config: SftConfig, ctx: StageContext) -> Result<Output, StageError> {
        tokio::task::spawn_blocking(move || {
            // candle's CPU matmul splits its work over the current rayon pool: a pool of
            // the threads this node was granted keeps it to them.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(ctx.threads.max(1))
                .build()
                .map_err(|e| StageError::msg(format!("training threads: {e}")))?;
            pool.install(|| train(&config, &ctx))
        })
        .await
        .map_err(|e| StageError::msg(format!("training thread: {e}")))?
    }
}
