//! `eval.shapes_geneval`: GenEval on the shapes world. Every generated image is judged
//! by the exact judge against its prompt's GenEval-style record; the report holds
//! GenEval's `results.jsonl` and summary, per-task scores, the overall score with a
//! bootstrap confidence interval over prompts, and the counts behind them.

use crate::bootstrap::{TaskPrompts, overall_interval};
use datasets::shapes::{Judge, JudgeOptions, Metadata, Summary, Task};
use datasets::table::TableReader;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext,
    StageError,
};
use schemars::JsonSchema;
use schemas::eval_sample::EvalSample;
use schemas::rl_prompt::RlPrompt;
use serde::{Deserialize, Serialize};
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

/// What judging a set of samples gives.
pub struct Evaluation {
    /// GenEval's `results.jsonl` lines, one per image.
    pub lines: Vec<String>,
    pub summary: Summary,
    pub overall: f64,
    /// 95 % bootstrap interval of `overall` over prompts.
    pub interval: (f64, f64),
    /// Per task tag: (score, prompts).
    pub tasks: BTreeMap<&'static str, (f64, usize)>,
}

/// Judge every sample against its prompt's record.
pub fn evaluate(
    samples: impl IntoIterator<Item = EvalSample>,
    records: &HashMap<String, Metadata>,
    bootstrap_rounds: usize,
    seed: u64,
) -> Result<Evaluation, StageError> {
    let judge = Judge::new(JudgeOptions::default());
    let mut lines = Vec::new();
    let mut judged: Vec<(String, Metadata, bool)> = Vec::new();
    for s in samples {
        let record = records.get(&s.prompt_id).ok_or_else(|| {
            StageError::msg(format!(
                "sample `{}`: no prompt `{}` among the prompts",
                s.id, s.prompt_id
            ))
        })?;
        let bytes = s
            .image
            .bytes
            .as_deref()
            .ok_or_else(|| StageError::msg(format!("sample `{}` has no image bytes", s.id)))?;
        let verdict = judge
            .score_encoded(bytes, record)
            .map_err(|e| StageError::msg(format!("sample `{}`: {e}", s.id)))?;
        lines.push(
            serde_json::json!({
                "filename": s.id,
                "tag": record.tag.tag(),
                "metadata": record.to_json(),
                "correct": verdict.correct,
                "reason": verdict.reason,
            })
            .to_string(),
        );
        judged.push((s.prompt_id, record.clone(), verdict.correct));
    }
    if judged.is_empty() {
        return Err(StageError::msg("no samples to judge"));
    }
    let summary = Summary::new(judged.iter().map(|(_, r, ok)| (r, *ok)));
    let mut by_task: BTreeMap<&'static str, BTreeMap<&str, (usize, usize)>> = BTreeMap::new();
    for (prompt, record, ok) in &judged {
        let e = by_task
            .entry(record.tag.tag())
            .or_default()
            .entry(prompt)
            .or_default();
        e.0 += usize::from(*ok);
        e.1 += 1;
    }
    let prompts: Vec<TaskPrompts> = by_task
        .values()
        .map(|m| m.values().copied().collect())
        .collect();
    let (overall, lo, hi) = overall_interval(&prompts, bootstrap_rounds, 0.95, seed);
    let tasks = Task::GENEVAL
        .iter()
        .filter_map(|t| {
            let score = summary.task(*t)?;
            Some((
                t.tag(),
                (score, by_task.get(t.tag()).map_or(0, BTreeMap::len)),
            ))
        })
        .collect();
    Ok(Evaluation {
        lines,
        summary,
        overall,
        interval: (lo, hi),
        tasks,
    })
}

impl Stage for ShapesGenEval {
    type Config = ShapesGenEvalConfig;
    const KIND: &'static str = "eval.shapes_geneval";
    const VERSION: u32 = 1;
    const DOC: &'static str = "GenEval on the shapes world: the exact judge scores generated images; per task, overall and a bootstrap interval.";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "samples",
            kinds: &[ArtifactKind::Table],
            schema: Some("eval_sample"),
            arity: Arity::One,
            doc: "generated images with their prompt ids",
        },
        InputSpec {
            name: "prompts",
            kinds: &[ArtifactKind::Table],
            schema: Some("rl_prompt"),
            arity: Arity::One,
            doc: "the prompts, whose metadata holds GenEval-style records",
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
        tokio::task::spawn_blocking(move || {
            let mut records = HashMap::new();
            for rows in TableReader::open(&prompts.dir)?.rows::<RlPrompt>()? {
                for p in rows? {
                    let text = p.metadata.as_deref().ok_or_else(|| {
                        StageError::msg(format!("prompt `{}` has no metadata record", p.id))
                    })?;
                    let record = Metadata::from_json(text)
                        .map_err(|e| StageError::msg(format!("prompt `{}`: {e}", p.id)))?;
                    records.insert(p.id, record);
                }
            }
            let reader = TableReader::open(&samples.dir)?;
            let mut rows = Vec::new();
            for batch in reader.rows::<EvalSample>()? {
                ctx.check_cancelled()?;
                rows.extend(batch?);
            }
            let Evaluation { lines, summary, overall, interval: (lo, hi), tasks } =
                evaluate(rows, &records, config.bootstrap_rounds, config.seed)?;
            let per_task: serde_json::Map<String, serde_json::Value> = tasks
                .iter()
                .map(|(tag, (score, prompts))| (tag.to_string(), serde_json::json!({"score": score, "prompts": prompts})))
                .collect();
            let scores = serde_json::json!({
                "overall": overall,
                "overall_ci95": [lo, hi],
                "tasks": per_task,
                "images": summary.images,
                "prompts": summary.prompts,
                "correct_images": summary.correct_images,
                "judge": "exact shapes judge (colour segmentation + geometry, GenEval rules)",
            });
            let mut results = lines.join("\n");
            results.push('\n');
            std::fs::write(ctx.out_dir.join("results.jsonl"), results)?;
            std::fs::write(ctx.out_dir.join("summary.txt"), summary.to_string())?;
            std::fs::write(ctx.out_dir.join("scores.json"), serde_json::to_vec_pretty(&scores).expect("json"))?;
            let mut md = format!(
                "# Shapes GenEval\n\nOverall **{overall:.3}** (95% bootstrap interval {lo:.3}–{hi:.3}) over {} prompts, {} images, judged by the exact shapes judge.\n\n| task | score | prompts |\n| --- | ---: | ---: |\n",
                summary.prompts, summary.images
            );
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
            images.iter().enumerate().map(|(i, img)| sample(i, img)),
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
        let shifted = (0..n).map(|i| {
            let j = if i + 1 < n && prompts[i + 1].metadata.tag == prompts[i].metadata.tag {
                i + 1
            } else {
                i - 1
            };
            sample(j, &images[i])
        });
        let wrong = evaluate(shifted, &records, 200, 1).unwrap();
        assert!(wrong.overall < 0.2, "{}", wrong.overall);
        let missing = evaluate(
            [EvalSample {
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
