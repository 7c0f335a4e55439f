//! `eval.shapes_geneval`: GenEval on the shapes world. Every generated image is judged
//! by the exact judge against its prompt's GenEval-style record; the report holds
//! GenEval's `results.jsonl` and summary, per-task scores, the overall score with a
//! bootstrap confidence interval over prompts, and the counts behind them.

use crate::bootstrap::{PairedPrompts, TaskPrompts, overall_interval, paired_difference};
use crate::scores::{self, ScoreContext, prompt_set};
use datasets::shapes::{Judge, JudgeOptions, Metadata, Summary, Task};
use datasets::table::TableReader;
use image::RgbImage;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext,
    StageError,
};
use schemars::JsonSchema;
use schemas::eval_sample::EvalSample;
use schemas::eval_score::EvalScore;
use schemas::rl_prompt::RlPrompt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// Config of `eval.shapes_geneval`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShapesGenEvalConfig {
    /// Bootstrap resamples for the confidence interval.
    #[serde(default = "default_rounds")]
    pub bootstrap_rounds: usize,
    /// Seed of the bootstrap.
    #[serde(default)]
    pub seed: u64,
}

fn default_rounds() -> usize {
    2000
}

pub struct ShapesGenEval;

/// The judge, as the score table names it.
pub const JUDGE: &str = "exact shapes judge (colour segmentation + geometry, GenEval rules)";

/// Why samples could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("sample `{sample}`: no prompt `{prompt}` among the prompts")]
    UnknownPrompt { sample: String, prompt: String },
    #[error("sample `{0}` has no image bytes")]
    NoImage(String),
    #[error("sample `{sample}`: {message}")]
    BadImage { sample: String, message: String },
    #[error("prompt `{prompt}`: {message}")]
    BadRecord { prompt: String, message: String },
    #[error("no samples to judge")]
    Empty,
}

/// The GenEval-style record of every prompt of an `rl_prompt` table, by prompt id.
pub fn records(
    prompts: impl IntoIterator<Item = RlPrompt>,
) -> Result<HashMap<String, Metadata>, EvalError> {
    prompts
        .into_iter()
        .map(|p| {
            let bad = |message: String| EvalError::BadRecord {
                prompt: p.id.clone(),
                message,
            };
            let text = p
                .metadata
                .as_deref()
                .ok_or_else(|| bad("no shapes-GenEval metadata record".into()))?;
            let record = Metadata::from_json(text).map_err(|e| bad(e.to_string()))?;
            Ok((p.id, record))
        })
        .collect()
}

/// One image's verdict.
#[derive(Clone, Debug)]
pub struct Judged {
    pub sample_id: String,
    pub prompt_id: String,
    pub record: Metadata,
    pub correct: bool,
    pub reason: String,
}

/// Judge one image against its prompt's record.
pub fn judge(
    judge: &Judge,
    sample_id: String,
    prompt_id: String,
    image: &RgbImage,
    record: &Metadata,
) -> Judged {
    let verdict = judge.score(image, record);
    Judged {
        sample_id,
        prompt_id,
        record: record.clone(),
        correct: verdict.correct,
        reason: verdict.reason,
    }
}

/// What judging a set of samples gives.
pub struct Evaluation {
    /// GenEval's `results.jsonl` lines, one per image.
    pub lines: Vec<String>,
    pub summary: Summary,
    /// GenEval's overall score ([`Summary::overall`]: the mean over its six tasks).
    pub overall: f64,
    /// 95 % bootstrap interval of `overall` over prompts.
    pub interval: (f64, f64),
    /// Per task tag: (score, prompts).
    pub tasks: BTreeMap<&'static str, (f64, usize)>,
    /// Per GenEval task, per prompt id: (correct images, images).
    pub by_prompt: BTreeMap<&'static str, BTreeMap<String, (usize, usize)>>,
}

impl Evaluation {
    /// The scores as `scores.json` and `eval.jsonl` hold them.
    pub fn scores(&self) -> Value {
        let tasks: serde_json::Map<String, Value> = self
            .tasks
            .iter()
            .map(|(t, (score, n))| (t.to_string(), json!({"score": score, "prompts": n})))
            .collect();
        json!({
            "overall": self.overall,
            "overall_ci95": [self.interval.0, self.interval.1],
            "tasks": tasks,
            "images": self.summary.images,
            "prompts": self.summary.prompts,
            "correct_images": self.summary.correct_images,
        })
    }

    /// The prompts of each GenEval task as the bootstrap takes them.
    pub fn task_prompts(&self) -> Vec<TaskPrompts> {
        self.by_prompt
            .values()
            .map(|m| m.values().copied().collect())
            .collect()
    }
}

/// The prompts two evaluations share, task by task, for a paired comparison; an error
/// names a prompt one of them lacks.
pub fn paired(a: &Evaluation, b: &Evaluation) -> Result<Vec<PairedPrompts>, String> {
    let count = |e: &Evaluation| e.by_prompt.values().map(BTreeMap::len).sum::<usize>();
    if count(a) != count(b) {
        return Err(format!(
            "the two evaluations judged {} and {} prompts: a paired comparison needs the same ones",
            count(a),
            count(b)
        ));
    }
    a.by_prompt
        .iter()
        .map(|(task, prompts)| {
            let theirs = b.by_prompt.get(task);
            prompts
                .iter()
                .map(|(id, &mine)| {
                    let other = theirs.and_then(|t| t.get(id)).ok_or_else(|| {
                        format!("prompt `{id}` ({task}) was judged for one model only")
                    })?;
                    Ok((mine, *other))
                })
                .collect()
        })
        .collect()
}

/// Summarise verdicts: GenEval's summary, the overall score with its bootstrap interval
/// over prompts (within each of GenEval's tasks; `scene` records are listed but not
/// scored, as in [`Summary::overall`]), and per-task scores.
pub fn summarize(
    judged: &[Judged],
    bootstrap_rounds: usize,
    seed: u64,
) -> Result<Evaluation, EvalError> {
    if judged.is_empty() {
        return Err(EvalError::Empty);
    }
    let lines = judged
        .iter()
        .map(|j| {
            json!({
                "filename": j.sample_id,
                "tag": j.record.tag.tag(),
                "metadata": j.record.to_json(),
                "correct": j.correct,
                "reason": j.reason,
            })
            .to_string()
        })
        .collect();
    let summary = Summary::new(judged.iter().map(|j| (&j.record, j.correct)));
    let mut by_prompt: BTreeMap<&'static str, BTreeMap<String, (usize, usize)>> = BTreeMap::new();
    for j in judged.iter().filter(|j| j.record.tag != Task::Scene) {
        let e = by_prompt
            .entry(j.record.tag.tag())
            .or_default()
            .entry(j.prompt_id.clone())
            .or_default();
        e.0 += usize::from(j.correct);
        e.1 += 1;
    }
    let tasks = Task::GENEVAL
        .iter()
        .filter_map(|t| {
            let score = summary.task(*t)?;
            Some((
                t.tag(),
                (score, by_prompt.get(t.tag()).map_or(0, BTreeMap::len)),
            ))
        })
        .collect();
    let mut e = Evaluation {
        lines,
        overall: summary.overall(),
        summary,
        interval: (0.0, 0.0),
        tasks,
        by_prompt,
    };
    let (_, lo, hi) = overall_interval(&e.task_prompts(), bootstrap_rounds, 0.95, seed);
    e.interval = (lo, hi);
    Ok(e)
}

/// Judge every sample (encoded image rows) against its prompt's record, in order.
pub fn judge_all(
    samples: &[EvalSample],
    records: &HashMap<String, Metadata>,
) -> Result<Vec<Judged>, EvalError> {
    let shapes = Judge::new(JudgeOptions::default());
    samples
        .iter()
        .map(|s| {
            let record = records
                .get(&s.prompt_id)
                .ok_or_else(|| EvalError::UnknownPrompt {
                    sample: s.id.clone(),
                    prompt: s.prompt_id.clone(),
                })?;
            let bytes = s
                .image
                .bytes
                .as_deref()
                .ok_or_else(|| EvalError::NoImage(s.id.clone()))?;
            let image = image::load_from_memory(bytes)
                .map_err(|e| EvalError::BadImage {
                    sample: s.id.clone(),
                    message: e.to_string(),
                })?
                .to_rgb8();
            Ok(judge(
                &shapes,
                s.id.clone(),
                s.prompt_id.clone(),
                &image,
                record,
            ))
        })
        .collect()
}

/// Judge every sample against its prompt's record and summarise the verdicts.
pub fn evaluate(
    samples: &[EvalSample],
    records: &HashMap<String, Metadata>,
    bootstrap_rounds: usize,
    seed: u64,
) -> Result<Evaluation, EvalError> {
    summarize(&judge_all(samples, records)?, bootstrap_rounds, seed)
}

/// The score rows of an evaluation: `overall` with its interval, then each task.
pub fn score_rows(e: &Evaluation, context: &ScoreContext) -> Vec<EvalScore> {
    let prompts = e.summary.prompts;
    let mut rows = vec![context.row(
        "overall",
        e.overall,
        Some(e.interval),
        prompts,
        e.summary.images,
    )];
    for (task, &(score, n)) in &e.tasks {
        let images = e
            .by_prompt
            .get(task)
            .map_or(0, |m| m.values().map(|c| c.1).sum());
        rows.push(context.row(task, score, None, n, images));
    }
    rows
}

/// The samples with their verdicts (score 1 or 0, the reason in `details`).
pub fn with_verdicts(samples: Vec<EvalSample>, judged: &[Judged]) -> Vec<EvalSample> {
    samples
        .into_iter()
        .zip(judged)
        .map(|(mut s, j)| {
            s.score = Some(f64::from(u8::from(j.correct)));
            s.details = Some(
                json!({"correct": j.correct, "reason": j.reason, "tag": j.record.tag.tag()})
                    .to_string(),
            );
            s
        })
        .collect()
}

impl Stage for ShapesGenEval {
    type Config = ShapesGenEvalConfig;
    const KIND: &'static str = "eval.shapes_geneval";
    const VERSION: u32 = 2;
    const DOC: &'static str = "GenEval on the shapes world: the exact judge scores generated images; per task, overall and a bootstrap interval.";
    const INPUTS: &'static [InputSpec] = &[
        scores::SAMPLES,
        scores::PROMPTS,
        InputSpec {
            name: "baseline",
            kinds: &[ArtifactKind::Table],
            schema: Some("eval_sample"),
            arity: Arity::Optional,
            doc: "another model's images of the same prompts: the report adds the difference of the overall scores with a paired bootstrap interval",
        },
    ];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Report));

    async fn run(
        &self,
        config: ShapesGenEvalConfig,
        ctx: StageContext,
    ) -> Result<Output, StageError> {
        let samples = ctx.input("samples")?.clone();
        let prompts = ctx.input("prompts")?.clone();
        let baseline = ctx.inputs("baseline").first().cloned();
        tokio::task::spawn_blocking(move || {
            let prompt_rows: Vec<RlPrompt> = scores::read_all(&prompts.dir)?;
            let records = records(prompt_rows.clone()).map_err(StageError::from)?;
            let read = |dir: &std::path::Path| -> Result<Vec<EvalSample>, StageError> {
                let mut rows = Vec::new();
                for batch in TableReader::open(dir)?.rows::<EvalSample>()? {
                    ctx.check_cancelled()?;
                    rows.extend(batch?);
                }
                Ok(rows)
            };
            let judged = |dir: &std::path::Path| -> Result<Evaluation, StageError> {
                Ok(evaluate(&read(dir)?, &records, config.bootstrap_rounds, config.seed)?)
            };
            let rows = read(&samples.dir)?;
            let verdicts = judge_all(&rows, &records)?;
            let e = summarize(&verdicts, config.bootstrap_rounds, config.seed)?;
            let context = ScoreContext::new(
                "shapes_geneval",
                &samples,
                rows.first(),
                &prompts,
                &prompt_set(prompt_rows.iter().map(|p| p.family.as_str())),
                JUDGE,
                "exact",
            );
            scores::write(&ctx.out_dir, &score_rows(&e, &context), with_verdicts(rows, &verdicts))?;
            let (overall, (lo, hi), summary, lines) = (e.overall, e.interval, &e.summary, &e.lines);
            let mut scores = e.scores();
            scores["judge"] = json!(JUDGE);
            let versus = match &baseline {
                Some(b) => {
                    let base = judged(&b.dir)?;
                    let (d, dlo, dhi) = paired_difference(
                        &paired(&base, &e).map_err(StageError::msg)?,
                        config.bootstrap_rounds,
                        0.95,
                        config.seed,
                    );
                    scores["versus_baseline"] = json!({
                        "baseline": b.node,
                        "baseline_overall": base.overall,
                        "difference": d,
                        "difference_ci95": [dlo, dhi],
                    });
                    ctx.log(format!(
                        "versus `{}` ({:.3}): {d:+.3} (paired 95% CI {dlo:+.3} to {dhi:+.3})",
                        b.node, base.overall
                    ));
                    format!(
                        "\nAgainst `{}` ({:.3}) on the same prompts: **{d:+.3}** (paired bootstrap 95% interval {dlo:+.3} to {dhi:+.3}).\n",
                        b.node, base.overall
                    )
                }
                None => String::new(),
            };
            let mut results = lines.join("\n");
            results.push('\n');
            std::fs::write(ctx.out_dir.join("results.jsonl"), results)?;
            std::fs::write(ctx.out_dir.join("summary.txt"), summary.to_string())?;
            std::fs::write(ctx.out_dir.join("scores.json"), serde_json::to_vec_pretty(&scores).expect("json"))?;
            let mut md = format!(
                "# Shapes GenEval\n\nOverall **{overall:.3}** (95% bootstrap interval {lo:.3}–{hi:.3}) over {} prompts, {} images, judged by the exact shapes judge.\n\n| task | score | prompts |\n| --- | ---: | ---: |\n",
                summary.prompts, summary.images
            );
            md.insert_str(md.find("\n\n| task").expect("the table"), &versus);
            for (tag, v) in scores["tasks"].as_object().expect("object") {
                let _ = writeln!(md, "| {tag} | {:.3} | {} |", v["score"].as_f64().unwrap_or(0.0), v["prompts"]);
            }
            std::fs::write(ctx.out_dir.join("report.md"), md)?;
            ctx.log(format!("overall {overall:.3} (95% CI {lo:.3}–{hi:.3}) on {} images", summary.images));
            ctx.count("images", summary.images as u64);
            ctx.count("correct_images", summary.correct_images as u64);
            Ok(Output {
                rows: None,
                schema: None,
                meta: scores,
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("judge thread: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::shapes::{HeldOut, SceneGenerator, TaskCounts, prompt_set, render_png};
    use schemas::ImageData;

    #[test]
    fn right_images_score_one_and_swapped_ones_score_near_zero() {
        let prompts = prompt_set(3, &TaskCounts::uniform(6), &HeldOut::default());
        let records: HashMap<String, Metadata> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("p{i}"), p.metadata.clone()))
            .collect();
        let mut g = SceneGenerator::new(1);
        let images: Vec<Vec<u8>> = prompts
            .iter()
            .map(|p| render_png(&g.for_metadata(&p.metadata).unwrap(), 64).unwrap())
            .collect();
        let sample = |i: usize, img: &Vec<u8>| EvalSample {
            id: format!("s{i}"),
            benchmark: "shapes_geneval".into(),
            prompt_id: format!("p{i}"),
            prompt: prompts[i].metadata.prompt.clone(),
            image: ImageData::from_bytes(img.clone(), None),
            ..EvalSample::default()
        };
        let right = evaluate(
            &images
                .iter()
                .enumerate()
                .map(|(i, img)| sample(i, img))
                .collect::<Vec<_>>(),
            &records,
            200,
            1,
        )
        .unwrap();
        assert_eq!(right.overall, 1.0);
        assert_eq!(right.interval, (1.0, 1.0));
        assert_eq!(right.lines.len(), prompts.len());
        // Each image judged against the next prompt of the same task: (almost) all wrong.
        let n = prompts.len();
        let shifted: Vec<EvalSample> = (0..n)
            .map(|i| {
                let j = if i + 1 < n && prompts[i + 1].metadata.tag == prompts[i].metadata.tag {
                    i + 1
                } else {
                    i - 1
                };
                sample(j, &images[i])
            })
            .collect();
        let wrong = evaluate(&shifted, &records, 200, 1).unwrap();
        assert!(wrong.overall < 0.2, "{}", wrong.overall);
        let missing = evaluate(
            &[EvalSample {
                prompt_id: "nope".into(),
                ..sample(0, &images[0])
            }],
            &records,
            10,
            1,
        );
        assert!(
            missing
                .err()
                .unwrap()
                .to_string()
                .contains("no prompt `nope`")
        );
    }
}
