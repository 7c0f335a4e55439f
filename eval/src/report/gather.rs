//! From artifacts to a [`Report`]: each artifact is taken for what its content is, so
//! the `eval.report` stage (its inputs) and `reasongen report` (a run's artifacts from
//! the store) share this one path:
//!
//! - an eval report (a Report with `scores/`): its scores, and its verdicts, of which
//!   a few prompts per task and the worst and best are kept; its `scores.json`'s
//!   comparison with a baseline, when there is one;
//! - an `eval_score` table: the scores of eval reports not given themselves;
//! - an `eval_sample` table: generated images, joined to the verdicts by sample id.
//!   Verdicts keep no image bytes, and each score row names the table it judged by
//!   digest (`samples`), so the images of an evaluation are those of the table with
//!   that digest, read shard by shard for the shown samples only;
//! - a Model with `metrics.jsonl`: a training run's curves (and `eval.jsonl`'s
//!   held-out scores); any Model names the model digests of the scores;
//! - a Release with a `README.md`: its dataset card.
//!
//! Anything else is passed over.

use super::curves;
use super::model::{DatasetCard, EvalRun, PromptResult, Report, Sample, Training, Versus};
use crate::scores::{SCORES_DIR, read_scores, read_verdicts};
use datasets::table::TableReader;
use pipeline::{ArtifactKind, InputArtifact, StageError};
use schemars::JsonSchema;
use schemas::eval_sample::EvalSample;
use schemas::eval_score::EvalScore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// What the page shows of each evaluation.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// The page's title (default: "reasongen report", with the recipe's name).
    #[serde(default)]
    pub title: Option<String>,
    /// Prompts shown per task, the first judged of each.
    #[serde(default = "default_per_task")]
    pub per_task: usize,
    /// Prompts shown among the worst, and among the best (none shown twice).
    #[serde(default = "default_extremes")]
    pub extremes: usize,
}

fn default_per_task() -> usize {
    2
}

fn default_extremes() -> usize {
    4
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            title: None,
            per_task: default_per_task(),
            extremes: default_extremes(),
        }
    }
}

fn has_file(a: &InputArtifact, prefix: &str) -> bool {
    a.content.files.iter().any(|f| f.path.starts_with(prefix))
}

fn is_table(a: &InputArtifact, schema: &str) -> bool {
    a.content.kind == ArtifactKind::Table
        && a.content
            .schema
            .as_deref()
            .and_then(|s| s.split('@').next())
            == Some(schema)
}

fn read_lines(path: &Path) -> Result<Vec<Value>, StageError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| StageError::msg(format!("{}: {e}", path.display())))
        })
        .collect()
}

/// The report of `artifacts` (in order), as `config` selects.
pub fn gather(
    artifacts: &[InputArtifact],
    config: &ReportConfig,
    title: String,
) -> Result<Report, StageError> {
    let models: HashMap<String, &str> = artifacts
        .iter()
        .filter(|a| a.content.kind == ArtifactKind::Model)
        .map(|a| (a.digest.to_hex(), a.node.as_str()))
        .collect();
    let model_label = |digest: &str| match models.get(digest) {
        Some(node) => node.to_string(),
        None if digest.is_empty() => "not recorded".into(),
        None => digest.chars().take(12).collect(),
    };
    let tables: HashMap<String, &InputArtifact> = artifacts
        .iter()
        .filter(|a| is_table(a, "eval_sample"))
        .map(|a| (a.digest.to_hex(), a))
        .collect();
    let mut evals = Vec::new();
    let mut seen = HashSet::new();
    for a in artifacts {
        if a.content.kind == ArtifactKind::Report && has_file(a, &format!("{SCORES_DIR}/")) {
            let at = |e: StageError| e.context(format!("eval report of `{}`", a.node));
            let mut scores = read_scores(&a.dir).map_err(at)?;
            for s in &mut scores {
                s.eval_report = a.digest.to_hex();
            }
            if seen.insert(a.digest.to_hex()) {
                let run = eval_run(a, scores, &tables, config, &model_label).map_err(at)?;
                evals.push(run);
            }
        }
    }
    for a in artifacts.iter().filter(|a| is_table(a, "eval_score")) {
        let mut by_report: BTreeMap<String, Vec<EvalScore>> = BTreeMap::new();
        for rows in TableReader::open(&a.dir)?.rows::<EvalScore>()? {
            for r in rows? {
                if !seen.contains(&r.eval_report) {
                    by_report.entry(r.eval_report.clone()).or_default().push(r);
                }
            }
        }
        for (report, scores) in by_report {
            seen.insert(report.clone());
            evals.push(EvalRun {
                label: report.chars().take(12).collect(),
                model: scores.first().map(|s| model_label(&s.model)).unwrap_or_default(),
                images_note: Some(format!(
                    "Only the scores of this eval report were given (table `{}`): no verdicts, no images.",
                    a.node
                )),
                scores,
                ..EvalRun::default()
            });
        }
    }
    let mut trainings = Vec::new();
    for a in artifacts
        .iter()
        .filter(|a| a.content.kind == ArtifactKind::Model && has_file(a, "metrics.jsonl"))
    {
        let metrics = read_lines(&a.dir.join("metrics.jsonl"))?;
        let held_out = read_lines(&a.dir.join("eval.jsonl"))?;
        trainings.push(Training {
            node: a.node.clone(),
            charts: curves::charts(&metrics, &held_out),
        });
    }
    let mut datasets = Vec::new();
    for a in artifacts
        .iter()
        .filter(|a| a.content.kind == ArtifactKind::Release && has_file(a, "README.md"))
    {
        datasets.push(DatasetCard {
            node: a.node.clone(),
            markdown: std::fs::read_to_string(a.dir.join("README.md"))?,
        });
    }
    Ok(Report {
        title,
        evals,
        trainings,
        datasets,
    })
}

/// One evaluation: its verdicts grouped by prompt, the shown ones with their images.
fn eval_run(
    a: &InputArtifact,
    scores: Vec<EvalScore>,
    tables: &HashMap<String, &InputArtifact>,
    config: &ReportConfig,
    model_label: &dyn Fn(&str) -> String,
) -> Result<EvalRun, StageError> {
    let prompts = by_prompt(read_verdicts(&a.dir)?);
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by(|&i, &j| prompts[i].mean().total_cmp(&prompts[j].mean()));
    let worst: Vec<usize> = order.iter().take(config.extremes).copied().collect();
    order.sort_by(|&i, &j| prompts[j].mean().total_cmp(&prompts[i].mean()));
    let best: Vec<usize> = order
        .iter()
        .filter(|i| !worst.contains(i))
        .take(config.extremes)
        .copied()
        .collect();
    let mut tasks: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let tag = p.tag.clone().unwrap_or_else(|| "untagged".into());
        match tasks.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, list)) if list.len() < config.per_task => list.push(i),
            Some(_) => {}
            None if config.per_task > 0 => tasks.push((tag, vec![i])),
            None => {}
        }
    }
    let shown: HashSet<&str> = worst
        .iter()
        .chain(&best)
        .chain(tasks.iter().flat_map(|(_, l)| l))
        .flat_map(|&i| prompts[i].samples.iter().map(|s| s.id.as_str()))
        .collect();
    let table = scores.first().and_then(|s| tables.get(&s.samples));
    let (images, images_note) = match table {
        Some(t) => (read_images(&t.dir, &shown)?, None),
        None => (
            HashMap::new(),
            Some(format!(
                "Images not shown: the generation table judged (`{}`) is not among the inputs.",
                scores
                    .first()
                    .map(|s| s.samples.chars().take(12).collect::<String>())
                    .unwrap_or_default()
            )),
        ),
    };
    let pick = |list: &[usize]| -> Vec<PromptResult> {
        list.iter()
            .map(|&i| {
                let mut p = prompts[i].clone();
                for s in &mut p.samples {
                    s.image = images.get(&s.id).cloned();
                }
                p
            })
            .collect()
    };
    Ok(EvalRun {
        label: a.node.clone(),
        model: scores
            .first()
            .map(|s| model_label(&s.model))
            .unwrap_or_default(),
        prompts_judged: prompts.len(),
        worst: pick(&worst),
        best: pick(&best),
        by_task: tasks.iter().map(|(t, l)| (t.clone(), pick(l))).collect(),
        images_note,
        versus: versus(&a.dir.join("scores.json"))?,
        scores,
    })
}

/// Verdict rows grouped by prompt, prompts in the order first judged.
fn by_prompt(verdicts: Vec<EvalSample>) -> Vec<PromptResult> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<PromptResult> = Vec::new();
    for v in verdicts {
        let details: Value = v
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        let i = *index.entry(v.prompt_id.clone()).or_insert_with(|| {
            out.push(PromptResult {
                id: v.prompt_id.clone(),
                prompt: v.prompt.clone(),
                tag: v
                    .tag
                    .clone()
                    .or_else(|| details["tag"].as_str().map(str::to_string)),
                samples: Vec::new(),
            });
            out.len() - 1
        });
        out[i].samples.push(Sample {
            correct: v.score.is_some_and(|s| s >= 0.5),
            reason: details["reason"].as_str().unwrap_or_default().to_string(),
            rationale: v.rationale,
            id: v.id,
            image: None,
        });
    }
    out
}

/// The image bytes of the samples `wanted`, read shard by shard.
fn read_images(dir: &Path, wanted: &HashSet<&str>) -> Result<HashMap<String, Vec<u8>>, StageError> {
    let mut out = HashMap::new();
    for rows in TableReader::open(dir)?.rows::<EvalSample>()? {
        for r in rows? {
            if wanted.contains(r.id.as_str())
                && let Some(bytes) = r.image.bytes
            {
                out.insert(r.id, bytes);
            }
        }
    }
    Ok(out)
}

/// The comparison with a baseline an eval stage wrote into its `scores.json`.
fn versus(path: &Path) -> Result<Option<Versus>, StageError> {
    if !path.is_file() {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&std::fs::read(path)?)
        .map_err(|e| StageError::msg(format!("{}: {e}", path.display())))?;
    let b = &v["versus_baseline"];
    Ok((|| {
        Some(Versus {
            baseline: b["baseline"].as_str()?.to_string(),
            baseline_overall: b["baseline_overall"].as_f64()?,
            difference: b["difference"].as_f64()?,
            ci95: (
                b["difference_ci95"][0].as_f64()?,
                b["difference_ci95"][1].as_f64()?,
            ),
        })
    })())
}
