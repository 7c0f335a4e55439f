//! `model.generate`: a rationale and an image for each prompt of a table, with a
//! Janus-Pro model (ReasonGen-R1's generation; Janus-Pro's plain mode with
//! `rationale = false`), written as `eval_sample` rows (score and details empty).
//!
//! The image tokenizer is the `tokenizer` input when bound (e.g. the shapes world's
//! patch VQ; its code vocabulary must be the model's), else the model's own VQ-16.
//! Each (prompt, sample) has its own seed, derived from the node's seed, the prompt id
//! and the sample index, so that the rows do not depend on batching; and its result
//! is memoised by (model, tokenizer, prompt text, seed, settings), so that adding
//! prompts generates only the new ones.

use crate::janus::draw::{Drawer, GenerateConfig, png, sample_seed};
use crate::janus::sampling::Sampling;
use datasets::table::{ShardOptions, ShardWriter, TableReader};
use pipeline::memo::Memo;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, Digest, InputSpec, Output, OutputDecl, Resources, Stage,
    StageContext, StageError, Tracker,
};
use schemas::ImageData;
use schemas::Row;
use schemas::eval_sample::EvalSample;
use schemas::rl_prompt::RlPrompt;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// A model folder with its identity (an artifact's digest).
pub struct ModelInput<'a> {
    pub dir: &'a Path,
    pub digest: &'a Digest,
}

/// What a run reads and where it writes.
pub struct Job<'a> {
    /// The `rl_prompt` table's folder.
    pub prompts: &'a Path,
    pub model: ModelInput<'a>,
    pub tokenizer: Option<ModelInput<'a>>,
    /// The node's seed.
    pub seed: u64,
    pub out_dir: &'a Path,
}

/// What a run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Generated {
    pub rows: u64,
    pub schema: Option<String>,
    /// Images generated here (not from the memo), their tokens and seconds.
    pub images_generated: u64,
    pub tokens_generated: u64,
    pub seconds: f64,
    pub tokenizer: String,
    /// The images' side in pixels.
    pub resolution: u32,
}

#[derive(Serialize)]
struct MemoKey<'a> {
    model: String,
    tokenizer: Option<String>,
    prompt: &'a str,
    seed: u64,
    settings: String,
    dtype: String,
}

#[derive(Serialize, Deserialize)]
struct MemoValue {
    rationale: Option<String>,
    codes: Vec<u32>,
}

/// One row to produce.
struct Item {
    prompt: RlPrompt,
    sample: u32,
    seed: u64,
    key: Digest,
    found: Option<MemoValue>,
}

/// Generate for every prompt of the job's table (see the module documentation).
/// `memo`, when given, holds finished samples.
pub fn write_generations(
    config: &GenerateConfig,
    job: Job,
    memo: Option<&Memo>,
    tracker: &impl Tracker,
) -> Result<Generated, StageError> {
    let Job {
        prompts,
        model,
        tokenizer,
        seed,
        out_dir,
    } = job;
    if config.samples == 0 || config.batch_size == 0 {
        return Err(StageError::msg("samples and batch_size must be at least 1"));
    }
    let device = config.device.open().map_err(StageError::msg)?;
    let drawer = Drawer::open(model.dir, tokenizer.as_ref().map(|t| t.dir), &device)
        .map_err(|e| StageError::msg(e).context("loading the model"))?;
    let options = config.draw_options();
    let tokenizer_id = format!(
        "{}@{}",
        drawer.image_tokenizer().kind(),
        tokenizer
            .as_ref()
            .map_or(model.digest, |t| t.digest)
            .short()
    );
    let settings = format!("{options:?}");
    let dtype = format!("{:?}", drawer.model().dtype());
    let reader = TableReader::open(prompts)?;
    tracker.total(reader.row_count()? * config.samples as u64, "images");
    let mut writer = ShardWriter::new(
        out_dir,
        Arc::new(EvalSample::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    let mut out = Generated {
        tokenizer: tokenizer_id,
        resolution: drawer.image_tokenizer().image_size(),
        ..Generated::default()
    };
    for rows in reader.rows::<RlPrompt>()? {
        let mut items = Vec::new();
        for prompt in rows? {
            for sample in 0..config.samples {
                let seed = sample_seed(seed, &prompt.id, sample);
                let key = Digest::of_json(&MemoKey {
                    model: model.digest.to_hex(),
                    tokenizer: tokenizer.as_ref().map(|t| t.digest.to_hex()),
                    prompt: &prompt.prompt,
                    seed,
                    settings: settings.clone(),
                    dtype: dtype.clone(),
                });
                let found = match memo {
                    Some(m) => m.get(&key)?.and_then(|v| serde_json::from_slice(&v).ok()),
                    None => None,
                };
                items.push(Item {
                    prompt: prompt.clone(),
                    sample,
                    seed,
                    key,
                    found,
                });
            }
        }
        let mut samples = Vec::with_capacity(items.len());
        let missing: Vec<usize> = (0..items.len())
            .filter(|&i| items[i].found.is_none())
            .collect();
        let mut drawn = std::collections::HashMap::new();
        for chunk in missing.chunks(config.batch_size) {
            let batch: Vec<(String, u64)> = chunk
                .iter()
                .map(|&i| (items[i].prompt.prompt.clone(), items[i].seed))
                .collect();
            let (drawings, timing) = drawer.draw(&batch, &options).map_err(|e| {
                StageError::msg(e).context(format!("prompt `{}`", items[chunk[0]].prompt.id))
            })?;
            out.images_generated += drawings.len() as u64;
            out.tokens_generated += (timing.rationale_tokens + timing.image_tokens) as u64;
            out.seconds += timing.rationale_seconds + timing.image_seconds;
            for (&i, d) in chunk.iter().zip(drawings) {
                if let Some(m) = memo {
                    let value = MemoValue {
                        rationale: d.rationale.clone(),
                        codes: d.codes.clone(),
                    };
                    m.put(
                        &items[i].key,
                        &serde_json::to_vec(&value).map_err(StageError::msg)?,
                    )?;
                }
                drawn.insert(i, (d.rationale, d.image));
            }
            tracker.advance(chunk.len() as u64)?;
        }
        for (i, item) in items.into_iter().enumerate() {
            let (rationale, image) = match (item.found, drawn.remove(&i)) {
                (_, Some(d)) => d,
                (Some(found), None) => {
                    let codes: Vec<u16> = found.codes.iter().map(|&c| c as u16).collect();
                    let image = drawer
                        .image_tokenizer()
                        .decode(&codes)
                        .map_err(StageError::msg)?;
                    tracker.advance(1)?;
                    (found.rationale, image)
                }
                (None, None) => {
                    return Err(StageError::msg(format!(
                        "prompt `{}` was not drawn",
                        item.prompt.id
                    )));
                }
            };
            let id = format!("{}-{}", item.prompt.id, item.sample);
            samples.push(EvalSample {
                benchmark: config
                    .benchmark
                    .clone()
                    .unwrap_or_else(|| item.prompt.family.clone()),
                prompt_id: item.prompt.id,
                prompt: item.prompt.prompt,
                tag: item.prompt.tag,
                sample: item.sample,
                seed: item.seed,
                rationale,
                image: ImageData::from_bytes(
                    png(&image).map_err(StageError::msg)?,
                    Some(format!("{id}.png")),
                ),
                score: None,
                details: None,
                model: model.digest.to_hex(),
                id,
            });
        }
        writer.write(&schemas::to_batch(&samples)?)?;
    }
    let summary = writer.finish()?;
    out.rows = summary.rows;
    out.schema = summary.schema_id;
    Ok(out)
}

/// Every setting a benchmark says to report with a score, as the `settings` of the
/// output's meta (the eval stages copy them into the score table).
pub fn settings(config: &GenerateConfig, seed: u64, resolution: u32) -> serde_json::Value {
    let options = config.draw_options();
    serde_json::json!({
        "resolution": resolution,
        "samples_per_prompt": config.samples,
        "seed": seed,
        "cot": config.rationale,
        "cfg_weight": config.cfg_weight,
        "unconditional": config.unconditional,
        "template": options.template,
        "max_rationale_tokens": config.rationale.then_some(config.max_rationale_tokens),
        "text_sampling": config.rationale.then_some(config.text_sampling),
        "image_sampling": config.image_sampling,
    })
}

pub struct Generate;

impl Stage for Generate {
    type Config = GenerateConfig;
    const KIND: &'static str = "model.generate";
    const VERSION: u32 = 2;
    const DOC: &'static str =
        "Generate a rationale and an image per prompt with a Janus-Pro model (eval_sample rows).";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "prompts",
            kinds: &[ArtifactKind::Table],
            schema: Some("rl_prompt"),
            arity: Arity::One,
            doc: "the prompts",
        },
        InputSpec {
            name: "model",
            kinds: &[ArtifactKind::Model],
            schema: None,
            arity: Arity::One,
            doc: "a Janus-Pro model folder (config.json, weights, tokenizer.json)",
        },
        InputSpec {
            name: "tokenizer",
            kinds: &[ArtifactKind::Model],
            schema: None,
            arity: Arity::Optional,
            doc: "the image tokenizer to decode with (default: the model's VQ-16)",
        },
    ];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("eval_sample"));
    const USES_SEED: bool = true;

    fn resources(config: &GenerateConfig) -> Resources {
        let gpu = config.device.wants_gpu();
        Resources {
            threads: if gpu { 1 } else { u32::MAX },
            gpus: gpu as u32,
            ..Resources::default()
        }
    }

    fn validate(config: &GenerateConfig, _: &pipeline::Bindings) -> Result<(), String> {
        if config.samples == 0 || config.batch_size == 0 {
            return Err("samples and batch_size must be at least 1".into());
        }
        if let Some(t) = &config.template
            && !t.contains("{}")
        {
            return Err(format!("template {t:?} has no `{{}}` for the prompt"));
        }
        for (name, s) in [
            ("text_sampling", config.text_sampling),
            ("image_sampling", config.image_sampling),
        ] {
            Sampling::from(s)
                .check()
                .map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(())
    }

    async fn run(&self, config: GenerateConfig, ctx: StageContext) -> Result<Output, StageError> {
        let prompts = ctx.input("prompts")?.clone();
        let model = ctx.input("model")?.clone();
        let tokenizer = ctx.inputs("tokenizer").first().cloned();
        let memo = ctx.memo("model.generate")?;
        tokio::task::spawn_blocking(move || {
            let job = Job {
                prompts: &prompts.dir,
                model: ModelInput {
                    dir: &model.dir,
                    digest: &model.digest,
                },
                tokenizer: tokenizer.as_ref().map(|t| ModelInput {
                    dir: &t.dir,
                    digest: &t.digest,
                }),
                seed: ctx.seed,
                out_dir: &ctx.out_dir,
            };
            let out = write_generations(&config, job, Some(&memo), &ctx)?;
            ctx.count("images", out.rows);
            ctx.count("images_generated", out.images_generated);
            ctx.count("tokens_generated", out.tokens_generated);
            if out.seconds > 0.0 {
                ctx.log(format!(
                    "{} images in {:.1} s: {:.2} images/s, {:.0} tokens/s",
                    out.images_generated,
                    out.seconds,
                    out.images_generated as f64 / out.seconds,
                    out.tokens_generated as f64 / out.seconds
                ));
            }
            Ok(Output {
                rows: Some(out.rows),
                schema: out.schema,
                meta: serde_json::json!({
                    "model": model.digest.to_hex(),
                    "tokenizer": out.tokenizer,
                    "settings": settings(&config, ctx.seed, out.resolution),
                }),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("generate thread: {e}")))?
    }
}
