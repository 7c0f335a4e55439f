//! `eval.clip`: CLIP in candle ([`crate::clip`]) as a *substitute* judge, labelled so in
//! every score row (`substitute: CLIP …`), in `scores.json` and in the title of
//! `report.md`. Two tasks: T2I-CompBench's CLIPScore per image ([`clipscore`]; per
//! category and overall, with a bootstrap interval over prompts), and GenEval's colour
//! check over the whole image, without GenEval's detector ([`color`]; `colors` and
//! `color_attr` prompts, the rest skipped and counted). The CLIP folder is the user's
//! (Hugging Face `CLIPModel` layout); its three files' content is part of the node's
//! key. Samples are streamed in batches; only verdicts are kept.

pub mod clipscore;
pub mod color;

use crate::bootstrap::{TaskPrompts, overall_interval};
use crate::clip::{Clip, ClipError, FILES};
use crate::scores::{self, ScoreContext, prompt_set};
use candle_core::{Device, IndexOp};
use datasets::table::TableReader;
use image::RgbImage;
use pipeline::store::FileHasher;
use pipeline::{
    ArtifactKind, ArtifactType, Bindings, Digest, InputSpec, Output, OutputDecl, Stage,
    StageContext, StageError,
};
use schemars::JsonSchema;
use schemas::eval_sample::EvalSample;
use schemas::eval_score::EvalScore;
use schemas::rl_prompt::RlPrompt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// What the judge measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClipTask {
    /// T2I-CompBench's CLIPScore: the cosine of each image and its full prompt.
    T2iClipscore,
    /// GenEval's colour check on `colors` and `color_attr` prompts, over the whole image.
    GenevalColor,
}

impl ClipTask {
    fn name(self) -> &'static str {
        match self {
            ClipTask::T2iClipscore => "t2i_clipscore",
            ClipTask::GenevalColor => "geneval_color",
        }
    }

    /// The benchmark scored when the samples name none.
    fn benchmark(self) -> &'static str {
        match self {
            ClipTask::T2iClipscore => "t2i_compbench",
            ClipTask::GenevalColor => "geneval",
        }
    }

    fn method(self) -> &'static str {
        match self {
            ClipTask::T2iClipscore => {
                "CLIPScore (raw cosine of image and full prompt, T2I-CompBench's non-spatial metric)"
            }
            ClipTask::GenevalColor => {
                "colour of each required object over the whole image (no detector, no mask), GenEval's colours and templates"
            }
        }
    }
}

/// Config of `eval.clip`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClipJudgeConfig {
    /// The CLIP folder, relative to the recipe: a Hugging Face `CLIPModel` repository's
    /// `config.json`, `tokenizer.json` and `model.safetensors` (e.g.
    /// `openai/clip-vit-base-patch32` for CLIPScore, `openai/clip-vit-large-patch14`
    /// for GenEval's colours).
    pub weights: String,
    /// `t2i_clipscore` or `geneval_color`.
    pub task: ClipTask,
    /// Images per forward pass.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Bootstrap resamples for the confidence intervals.
    #[serde(default = "default_rounds")]
    pub bootstrap_rounds: usize,
    /// Seed of the bootstrap.
    #[serde(default)]
    pub seed: u64,
}

fn default_batch() -> usize {
    16
}

fn default_rounds() -> usize {
    2000
}

/// Why samples could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error(transparent)]
    Clip(#[from] ClipError),
    #[error("sample `{sample}`: no prompt `{prompt}` among the prompts")]
    UnknownPrompt { sample: String, prompt: String },
    #[error("sample `{0}` has no image bytes")]
    NoImage(String),
    #[error("sample `{sample}`: {message}")]
    BadImage { sample: String, message: String },
    #[error("prompt `{prompt}`: {message}")]
    BadRecord { prompt: String, message: String },
    #[error("no samples to judge: {0}")]
    Empty(String),
}

/// The judge as the score table names it: `substitute: CLIP <folder's model> — <what>`.
pub fn judge_label(clip: &Clip, task: ClipTask) -> String {
    format!(
        "substitute: CLIP {} — {}, {}",
        clip.config().describe(),
        task.method(),
        task.name()
    )
}

/// One category's (or task's) score.
#[derive(Clone, Debug, PartialEq)]
pub struct Category {
    pub name: String,
    pub score: f64,
    pub interval: (f64, f64),
    pub prompts: usize,
    pub images: usize,
}

/// What judging a table of samples gives.
pub struct Evaluation {
    pub task: ClipTask,
    pub overall: f64,
    /// 95 % bootstrap interval of `overall` over prompts.
    pub interval: (f64, f64),
    pub categories: Vec<Category>,
    pub prompts: usize,
    pub images: usize,
    pub skipped_prompts: usize,
    pub skipped_images: usize,
    /// The judged samples, score and details set, image bytes dropped.
    pub verdicts: Vec<EvalSample>,
}

/// Judges samples batch by batch, keeping only verdicts.
pub struct Judging<'a> {
    clip: &'a Clip,
    task: ClipTask,
    prompts: HashMap<String, RlPrompt>,
    /// GenEval colour records by prompt id (`None`: another task).
    records: HashMap<String, Option<color::Record>>,
    classifiers: color::Classifiers,
    /// Per category, per prompt: (sum of scores, images).
    by_prompt: BTreeMap<String, BTreeMap<String, clipscore::PromptScores>>,
    skipped_prompts: BTreeSet<String>,
    skipped_images: usize,
    verdicts: Vec<EvalSample>,
}

fn decode(s: &EvalSample) -> Result<RgbImage, JudgeError> {
    let bytes = s
        .image
        .bytes
        .as_deref()
        .ok_or_else(|| JudgeError::NoImage(s.id.clone()))?;
    Ok(image::load_from_memory(bytes)
        .map_err(|e| JudgeError::BadImage {
            sample: s.id.clone(),
            message: e.to_string(),
        })?
        .to_rgb8())
}

impl<'a> Judging<'a> {
    /// Judge against `prompts` (an `rl_prompt` table's rows); for `geneval_color`
    /// every prompt needs a GenEval record in its metadata.
    pub fn new(clip: &'a Clip, task: ClipTask, prompts: Vec<RlPrompt>) -> Result<Self, JudgeError> {
        let mut records = HashMap::new();
        if task == ClipTask::GenevalColor {
            for p in &prompts {
                let bad = |message: String| JudgeError::BadRecord {
                    prompt: p.id.clone(),
                    message,
                };
                let text = p
                    .metadata
                    .as_deref()
                    .ok_or_else(|| bad("no GenEval metadata record".into()))?;
                records.insert(p.id.clone(), color::Record::of(text).map_err(bad)?);
            }
        }
        Ok(Judging {
            clip,
            task,
            prompts: prompts.into_iter().map(|p| (p.id.clone(), p)).collect(),
            records,
            classifiers: color::Classifiers::default(),
            by_prompt: BTreeMap::new(),
            skipped_prompts: BTreeSet::new(),
            skipped_images: 0,
            verdicts: Vec::new(),
        })
    }

    /// Judge `samples`, `batch_size` images per forward pass.
    pub fn push(&mut self, samples: Vec<EvalSample>, batch_size: usize) -> Result<(), JudgeError> {
        let mut batch = Vec::with_capacity(batch_size);
        for s in samples {
            let prompt =
                self.prompts
                    .get(&s.prompt_id)
                    .ok_or_else(|| JudgeError::UnknownPrompt {
                        sample: s.id.clone(),
                        prompt: s.prompt_id.clone(),
                    })?;
            if self.task == ClipTask::GenevalColor && self.records[&prompt.id].is_none() {
                self.skipped_prompts.insert(prompt.id.clone());
                self.skipped_images += 1;
                continue;
            }
            batch.push(s);
            if batch.len() == batch_size.max(1) {
                self.judge(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            self.judge(batch)?;
        }
        Ok(())
    }

    fn judge(&mut self, batch: Vec<EvalSample>) -> Result<(), JudgeError> {
        let images = batch.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        let verdicts: Vec<(f64, Value, String)> = match self.task {
            ClipTask::T2iClipscore => {
                let texts: Vec<&str> = batch
                    .iter()
                    .map(|s| self.prompts[&s.prompt_id].prompt.as_str())
                    .collect();
                clipscore::scores(self.clip, &images, &texts)?
                    .into_iter()
                    .zip(&batch)
                    .map(|(score, s)| {
                        let p = &self.prompts[&s.prompt_id];
                        let category = p.tag.clone().or_else(|| s.tag.clone());
                        (
                            score,
                            json!({"clipscore": score}),
                            category.unwrap_or_else(|| "all".into()),
                        )
                    })
                    .collect()
            }
            ClipTask::GenevalColor => {
                let embeddings = self.clip.image_embeddings(&images)?;
                let mut out = Vec::with_capacity(batch.len());
                for (i, s) in batch.iter().enumerate() {
                    let record = self.records[&s.prompt_id]
                        .as_ref()
                        .expect("samples of other tasks were skipped");
                    let image = embeddings.i(i..i + 1).map_err(ClipError::from)?;
                    let mut predicted = Vec::new();
                    let mut scores = serde_json::Map::new();
                    for clause in record.include.iter().filter(|c| c.color.is_some()) {
                        let s = self.classifiers.scores(self.clip, &image, &clause.class)?;
                        predicted.push((clause, color::predicted(&s)));
                        scores.insert(clause.class.clone(), json!(s));
                    }
                    let (correct, reason) = color::verdict(&predicted);
                    out.push((
                        f64::from(u8::from(correct)),
                        json!({"correct": correct, "reason": reason, "tag": record.tag, "colour_scores": scores}),
                        record.tag.clone(),
                    ));
                }
                out
            }
        };
        for (mut s, (score, details, category)) in batch.into_iter().zip(verdicts) {
            let e = self
                .by_prompt
                .entry(category)
                .or_default()
                .entry(s.prompt_id.clone())
                .or_default();
            e.0 += score;
            e.1 += 1;
            s.image.bytes = None;
            s.score = Some(score);
            s.details = Some(details.to_string());
            self.verdicts.push(s);
        }
        Ok(())
    }

    /// The scores: per category (mean over its images, interval over its prompts), and
    /// overall — for CLIPScore the mean over all images, for GenEval's colours the
    /// mean of the two task scores (as GenEval's overall), each with a bootstrap
    /// interval over prompts.
    pub fn finish(self, rounds: usize, seed: u64) -> Result<Evaluation, JudgeError> {
        if self.verdicts.is_empty() {
            return Err(JudgeError::Empty(match self.task {
                ClipTask::T2iClipscore => "the samples table is empty".into(),
                ClipTask::GenevalColor => format!(
                    "none of the {} images is of a `colors` or `color_attr` prompt",
                    self.skipped_images
                ),
            }));
        }
        let categories: Vec<Category> = self
            .by_prompt
            .iter()
            .map(|(name, prompts)| {
                let p: Vec<_> = prompts.values().copied().collect();
                let (score, lo, hi) = clipscore::mean_interval(&p, rounds, 0.95, seed);
                Category {
                    name: name.clone(),
                    score,
                    interval: (lo, hi),
                    prompts: p.len(),
                    images: p.iter().map(|c| c.1).sum(),
                }
            })
            .collect();
        let (overall, lo, hi) = match self.task {
            ClipTask::T2iClipscore => {
                let all: Vec<_> = self
                    .by_prompt
                    .values()
                    .flat_map(|m| m.values().copied())
                    .collect();
                clipscore::mean_interval(&all, rounds, 0.95, seed)
            }
            ClipTask::GenevalColor => {
                let tasks: Vec<TaskPrompts> = self
                    .by_prompt
                    .values()
                    .map(|m| m.values().map(|&(c, n)| (c.round() as usize, n)).collect())
                    .collect();
                overall_interval(&tasks, rounds, 0.95, seed)
            }
        };
        Ok(Evaluation {
            task: self.task,
            overall,
            interval: (lo, hi),
            prompts: categories.iter().map(|c| c.prompts).sum(),
            images: self.verdicts.len(),
            categories,
            skipped_prompts: self.skipped_prompts.len(),
            skipped_images: self.skipped_images,
            verdicts: self.verdicts,
        })
    }
}

/// The score rows: `overall` with its interval, then each category with its own.
pub fn score_rows(e: &Evaluation, context: &ScoreContext) -> Vec<EvalScore> {
    let mut rows = vec![context.row("overall", e.overall, Some(e.interval), e.prompts, e.images)];
    rows.extend(
        e.categories
            .iter()
            .map(|c| context.row(&c.name, c.score, Some(c.interval), c.prompts, c.images)),
    );
    rows
}

/// The scores as `scores.json` holds them.
pub fn scores_json(e: &Evaluation, judge: &str) -> Value {
    let categories: serde_json::Map<String, Value> = e
        .categories
        .iter()
        .map(|c| {
            let v = json!({"score": c.score, "ci95": [c.interval.0, c.interval.1], "prompts": c.prompts, "images": c.images});
            (c.name.clone(), v)
        })
        .collect();
    json!({
        "judge": judge,
        "judge_kind": "substitute",
        "task": e.task.name(),
        "overall": e.overall,
        "overall_ci95": [e.interval.0, e.interval.1],
        "tasks": categories,
        "prompts": e.prompts,
        "images": e.images,
        "skipped_prompts": e.skipped_prompts,
        "skipped_images": e.skipped_images,
    })
}

/// `report.md`: the title names the substitute judge; overall, then each category.
pub fn report(e: &Evaluation, judge: &str) -> String {
    let what = match e.task {
        ClipTask::T2iClipscore => "T2I-CompBench CLIPScore",
        ClipTask::GenevalColor => "GenEval colours",
    };
    let mut md = format!(
        "# {what} (substitute judge: {})\n\nNot the benchmark's official evaluator, so these scores are comparable only with scores from the same judge.\n\nOverall **{:.4}** (95% bootstrap interval over prompts {:.4}–{:.4}) over {} prompts, {} images",
        judge.trim_start_matches("substitute: "),
        e.overall,
        e.interval.0,
        e.interval.1,
        e.prompts,
        e.images
    );
    if e.task == ClipTask::GenevalColor {
        let _ = write!(
            md,
            "; {} prompts ({} images) of other tasks skipped",
            e.skipped_prompts, e.skipped_images
        );
    }
    md.push_str(".\n\n| task | score | 95% interval | prompts | images |\n| --- | ---: | --- | ---: | ---: |\n");
    for c in &e.categories {
        let _ = writeln!(
            md,
            "| {} | {:.4} | {:.4}–{:.4} | {} | {} |",
            c.name, c.score, c.interval.0, c.interval.1, c.prompts, c.images
        );
    }
    md
}

/// `eval.clip`.
pub struct ClipJudge;

impl Stage for ClipJudge {
    type Config = ClipJudgeConfig;
    const KIND: &'static str = "eval.clip";
    const VERSION: u32 = 1;
    const DOC: &'static str = "CLIP (candle, the user's Hugging Face CLIP folder) as a labelled substitute judge: T2I-CompBench's CLIPScore, or GenEval's colour check over the whole image; per category, overall and a bootstrap interval.";
    const INPUTS: &'static [InputSpec] = &[scores::SAMPLES, scores::PROMPTS];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Report));

    fn validate(config: &ClipJudgeConfig, _: &Bindings) -> Result<(), String> {
        if config.weights.trim().is_empty() {
            return Err("`weights` is empty: name the CLIP folder".into());
        }
        if config.batch_size == 0 {
            return Err("`batch_size` must be at least 1".into());
        }
        Ok(())
    }

    fn externals(
        config: &ClipJudgeConfig,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        let dir = pipeline::context::resolve_against(recipe_dir, &config.weights);
        FILES
            .iter()
            .map(|f| {
                let path = dir.join(f);
                let digest = files.digest(&path).map_err(|e| {
                    StageError::msg(format!(
                        "CLIP weights {}: {e} (the folder needs {})",
                        path.display(),
                        FILES.join(", ")
                    ))
                })?;
                Ok((format!("clip {}/{f}", config.weights), digest))
            })
            .collect()
    }

    async fn run(&self, config: ClipJudgeConfig, ctx: StageContext) -> Result<Output, StageError> {
        let samples = ctx.input("samples")?.clone();
        let prompts = ctx.input("prompts")?.clone();
        let weights = ctx.resolve(&config.weights);
        tokio::task::spawn_blocking(move || {
            let clip = Clip::load(&weights, &Device::Cpu)?;
            let prompt_rows: Vec<RlPrompt> = scores::read_all(&prompts.dir)?;
            let set = prompt_set(prompt_rows.iter().map(|p| p.family.as_str()));
            let mut judging = Judging::new(&clip, config.task, prompt_rows)?;
            let mut first: Option<EvalSample> = None;
            for batch in TableReader::open(&samples.dir)?.rows::<EvalSample>()? {
                ctx.check_cancelled()?;
                let rows = batch?;
                if first.is_none() {
                    first = rows.first().map(|s| EvalSample {
                        image: Default::default(),
                        ..s.clone()
                    });
                }
                judging.push(rows, config.batch_size)?;
            }
            let e = judging.finish(config.bootstrap_rounds, config.seed)?;
            let judge = judge_label(&clip, config.task);
            let benchmark = first
                .as_ref()
                .map(|s| s.benchmark.as_str())
                .filter(|b| !b.is_empty())
                .unwrap_or(config.task.benchmark());
            let context = ScoreContext::new(
                benchmark,
                &samples,
                first.as_ref(),
                &prompts,
                &set,
                &judge,
                "substitute",
            );
            scores::write(
                &ctx.out_dir,
                &score_rows(&e, &context),
                e.verdicts.iter().cloned(),
            )?;
            let meta = scores_json(&e, &judge);
            std::fs::write(
                ctx.out_dir.join("scores.json"),
                serde_json::to_vec_pretty(&meta).expect("json"),
            )?;
            std::fs::write(ctx.out_dir.join("report.md"), report(&e, &judge))?;
            ctx.log(format!(
                "{}: overall {:.4} (95% CI {:.4}–{:.4}) on {} images, {} skipped",
                config.task.name(),
                e.overall,
                e.interval.0,
                e.interval.1,
                e.images,
                e.skipped_images
            ));
            ctx.count("images", e.images as u64);
            ctx.count("skipped_images", e.skipped_images as u64);
            Ok(Output {
                rows: None,
                schema: None,
                meta,
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("CLIP judge thread: {e}")))?
    }
}

#[cfg(test)]
mod tests;
