//! A VLM judge's answers as verdicts and scores: an answer scores 1 when its last
//! `\boxed{}` holds `1` (or, under a JSON schema, its `verdict` is 1), 0 when it holds
//! `0`; anything else scores 0 and counts as `unparsed`. Per task or category the score
//! is the mean over its images; overall, the mean of the task scores (GenEval's
//! summary; T2I-CompBench's categories likewise) or the mean over all images
//! (DPG-Bench), with a 95 % bootstrap interval over prompts.

use crate::bootstrap::{TaskPrompts, overall_interval};
use crate::scores::ScoreContext;
use crate::vlm::boxed;
use schemas::eval_score::EvalScore;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One image's verdict read from its answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub correct: bool,
    /// Whether the answer held a verdict (`\boxed{0}`/`\boxed{1}`, or JSON `verdict`).
    pub parsed: bool,
}

/// The verdict of an answer's content (text, or JSON under a schema).
pub fn read(content: &Value) -> Verdict {
    let verdict = match content {
        Value::String(text) => match boxed(text) {
            Some("1") => Some(true),
            Some("0") => Some(false),
            _ => None,
        },
        other => match other["verdict"].as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
    };
    Verdict {
        correct: verdict == Some(true),
        parsed: verdict.is_some(),
    }
}

/// The counts behind the scores.
#[derive(Debug, Default)]
pub struct Tally {
    /// Per task or category, per prompt id: (correct images, images).
    by_tag: BTreeMap<String, BTreeMap<String, (usize, usize)>>,
    pub images: usize,
    pub unparsed: usize,
    /// Images without an answer (requests that failed, within the failure policy).
    pub failed: usize,
}

impl Tally {
    /// Count one image of `prompt` (task `tag`): its verdict, or `None` when its request
    /// failed (it scores 0).
    pub fn add(&mut self, tag: &str, prompt: &str, verdict: Option<&Verdict>) {
        let e = self
            .by_tag
            .entry(tag.to_string())
            .or_default()
            .entry(prompt.to_string())
            .or_default();
        e.0 += usize::from(verdict.is_some_and(|v| v.correct));
        e.1 += 1;
        self.images += 1;
        match verdict {
            None => self.failed += 1,
            Some(v) if !v.parsed => self.unparsed += 1,
            Some(_) => {}
        }
    }
}

/// How the overall score combines the tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overall {
    /// The mean of the task scores (GenEval, T2I-CompBench).
    MeanOfTasks,
    /// The mean over all images (DPG-Bench).
    MeanOfImages,
}

/// The scores of a tally: the overall row (with its interval) then one row per task,
/// and the same as JSON for `scores.json`.
pub fn score_rows(
    tally: &Tally,
    overall: Overall,
    context: &ScoreContext,
    rounds: usize,
    seed: u64,
) -> (Vec<EvalScore>, Value) {
    let tasks: Vec<TaskPrompts> = match overall {
        Overall::MeanOfTasks => tally
            .by_tag
            .values()
            .map(|m| m.values().copied().collect())
            .collect(),
        Overall::MeanOfImages => vec![
            tally
                .by_tag
                .values()
                .flat_map(|m| m.values().copied())
                .collect(),
        ],
    };
    let (score, lo, hi) = overall_interval(&tasks, rounds, 0.95, seed);
    let prompts: usize = tally.by_tag.values().map(BTreeMap::len).sum();
    let mut rows = vec![context.row("overall", score, Some((lo, hi)), prompts, tally.images)];
    let mut by_task = serde_json::Map::new();
    for (tag, per_prompt) in &tally.by_tag {
        let (c, n) = per_prompt
            .values()
            .fold((0, 0), |(c, n), (a, b)| (c + a, n + b));
        let task_score = c as f64 / n.max(1) as f64;
        rows.push(context.row(tag, task_score, None, per_prompt.len(), n));
        by_task.insert(
            tag.clone(),
            json!({"score": task_score, "prompts": per_prompt.len(), "images": n}),
        );
    }
    let summary = json!({
        "judge": context.judge,
        "judge_kind": context.judge_kind,
        "benchmark": context.benchmark,
        "overall": score,
        "overall_ci95": [lo, hi],
        "tasks": by_task,
        "prompts": prompts,
        "images": tally.images,
        "unparsed": tally.unparsed,
        "failed": tally.failed,
    });
    (rows, summary)
}

/// `report.md`: the title names the substitute judge; overall, then each task.
pub fn report(title: &str, summary: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut md = format!(
        "# {title} (substitute judge: {})\n\nNot the benchmark's official evaluator: every image was judged by a vision-language model over HTTP, so these scores are comparable only with scores from the same judge.\n\nOverall **{:.3}** (95% bootstrap interval over prompts {:.3}–{:.3}) over {} prompts, {} images; {} answers held no verdict (scored 0), {} requests failed (scored 0).\n\n| task | score | prompts | images |\n| --- | ---: | ---: | ---: |\n",
        summary["judge"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("substitute: "),
        f(&summary["overall"]),
        f(&summary["overall_ci95"][0]),
        f(&summary["overall_ci95"][1]),
        summary["prompts"],
        summary["images"],
        summary["unparsed"],
        summary["failed"],
    );
    for (tag, v) in summary["tasks"].as_object().into_iter().flatten() {
        md += &format!(
            "| {tag} | {:.3} | {} | {} |\n",
            f(&v["score"]),
            v["prompts"],
            v["images"]
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_verdicts() {
        let v = |c: Value| {
            let v = read(&c);
            (v.correct, v.parsed)
        };
        assert_eq!(v(json!("so \\boxed{1}")), (true, true));
        assert_eq!(v(json!("\\boxed{1} no: \\boxed{0}")), (false, true));
        assert_eq!(v(json!("I think yes")), (false, false));
        assert_eq!(v(json!("\\boxed{yes}")), (false, false));
        assert_eq!(v(json!({"verdict": 1})), (true, true));
        assert_eq!(v(json!({"verdict": 0})), (false, true));
        assert_eq!(v(json!({"verdict": 2})), (false, false));
    }

    #[test]
    fn overall_is_the_mean_of_tasks_or_of_images() {
        let yes = Verdict {
            correct: true,
            parsed: true,
        };
        let garbled = Verdict {
            correct: false,
            parsed: false,
        };
        let mut t = Tally::default();
        // Task a: 1 of 1; task b: 1 of 3 (one garbled answer, one failed request).
        t.add("a", "p1", Some(&yes));
        t.add("b", "p2", Some(&yes));
        t.add("b", "p2", Some(&garbled));
        t.add("b", "p3", None);
        assert_eq!((t.images, t.unparsed, t.failed), (4, 1, 1));
        let context = ScoreContext {
            benchmark: "geneval".into(),
            prompt_set: "geneval".into(),
            prompt_set_version: "v".into(),
            judge: "substitute: VLM m".into(),
            judge_kind: "substitute",
            model: String::new(),
            samples: String::new(),
            settings: Value::Null,
        };
        let (rows, summary) = score_rows(&t, Overall::MeanOfTasks, &context, 50, 1);
        assert_eq!(rows.len(), 3);
        assert!((rows[0].score - (1.0 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!((rows[0].prompts, rows[0].images), (3, 4));
        assert_eq!((rows[2].task.as_str(), rows[2].score), ("b", 1.0 / 3.0));
        assert!(rows.iter().all(|r| r.judge == "substitute: VLM m"));
        let (pooled, _) = score_rows(&t, Overall::MeanOfImages, &context, 50, 1);
        assert_eq!(pooled[0].score, 0.5);
        let md = report("GenEval", &summary);
        assert!(
            md.starts_with("# GenEval (substitute judge: VLM m)\n"),
            "{md}"
        );
        assert!(md.contains("1 answers held no verdict (scored 0), 1 requests failed"));
        assert!(md.contains("| b | 0.333 | 2 | 3 |"), "{md}");
    }
}
