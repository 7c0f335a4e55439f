//! GenEval's `results.jsonl` (one line per image, as `evaluate_images.py` writes it and
//! as our shapes judge writes it) read back and scored as `summary_scores.py` scores
//! it: each task's score is the mean of `correct` over its images, the overall score
//! the mean over the tasks present; prompts are told apart by their `metadata`. The
//! overall score's 95 % interval resamples prompts within each task.

use crate::bootstrap::{TaskPrompts, overall_interval};
use crate::scores::ScoreContext;
use schemas::eval_score::EvalScore;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One line of `results.jsonl`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Line {
    pub filename: String,
    pub tag: String,
    pub correct: bool,
    #[serde(default)]
    pub reason: Value,
    /// The record as a JSON string (GenEval's `json.dumps(metadata)`).
    #[serde(default)]
    pub metadata: Value,
}

impl Line {
    /// What tells this line's prompt apart: its record, else its file's folder.
    fn prompt_key(&self) -> String {
        match &self.metadata {
            Value::Null => self
                .filename
                .rsplitn(3, '/')
                .nth(2)
                .unwrap_or("")
                .to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// Every line of a `results.jsonl`; an error names the line.
pub fn parse(text: &str) -> Result<Vec<Line>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("results.jsonl line {}: {e}", i + 1))
        })
        .collect()
}

/// The file of a line relative to the layout's images folder
/// (`00012/samples/0003.png`), whether GenEval wrote it whole or relative.
pub fn relative_file(filename: &str, images: &Path) -> String {
    let prefix = format!("{}/", images.display());
    match filename.strip_prefix(&prefix) {
        Some(rest) => rest.to_string(),
        None => {
            let parts: Vec<&str> = filename.rsplitn(4, '/').collect();
            parts[..parts.len().min(3)]
                .iter()
                .rev()
                .copied()
                .collect::<Vec<_>>()
                .join("/")
        }
    }
}

/// A task's score.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskScore {
    pub score: f64,
    pub prompts: usize,
    pub images: usize,
}

/// The scores of a `results.jsonl`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    pub overall: f64,
    pub interval: (f64, f64),
    pub tasks: BTreeMap<String, TaskScore>,
    pub prompts: usize,
    pub images: usize,
}

/// Score `lines` as `summary_scores.py` does, with the interval of the overall score.
pub fn score(lines: &[Line], rounds: usize, seed: u64) -> Scores {
    let mut by_task: BTreeMap<&str, BTreeMap<String, (usize, usize)>> = BTreeMap::new();
    for l in lines {
        let e = by_task
            .entry(&l.tag)
            .or_default()
            .entry(l.prompt_key())
            .or_default();
        e.0 += usize::from(l.correct);
        e.1 += 1;
    }
    let tasks: BTreeMap<String, TaskScore> = by_task
        .iter()
        .map(|(t, prompts)| {
            let (c, n) = prompts
                .values()
                .fold((0, 0), |(c, n), (a, b)| (c + a, n + b));
            (
                t.to_string(),
                TaskScore {
                    score: c as f64 / n as f64,
                    prompts: prompts.len(),
                    images: n,
                },
            )
        })
        .collect();
    let task_prompts: Vec<TaskPrompts> = by_task
        .values()
        .map(|m| m.values().copied().collect())
        .collect();
    let (overall, lo, hi) = overall_interval(&task_prompts, rounds, 0.95, seed);
    Scores {
        overall,
        interval: (lo, hi),
        prompts: tasks.values().map(|t| t.prompts).sum(),
        images: lines.len(),
        tasks,
    }
}

/// The score rows: `overall` with its interval, then each task.
pub fn rows(s: &Scores, context: &ScoreContext) -> Vec<EvalScore> {
    let mut rows = vec![context.row("overall", s.overall, Some(s.interval), s.prompts, s.images)];
    rows.extend(
        s.tasks
            .iter()
            .map(|(t, v)| context.row(t, v.score, None, v.prompts, v.images)),
    );
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(folder: usize, sample: usize, tag: &str, correct: bool) -> String {
        serde_json::json!({
            "filename": format!("/x/images/{folder:05}/samples/{sample:04}.png"),
            "tag": tag,
            "correct": correct,
            "reason": "",
            "metadata": format!("{{\"tag\": \"{tag}\", \"n\": {folder}}}"),
        })
        .to_string()
    }

    #[test]
    fn tasks_average_images_and_overall_averages_tasks() {
        // counting: 3 of 4 right; position: 1 of 8 right over two prompts.
        let mut text = String::new();
        for (i, c) in [true, true, true, false].into_iter().enumerate() {
            text += &line(0, i, "counting", c);
            text.push('\n');
        }
        for f in [1, 2] {
            for i in 0..4 {
                text += &line(f, i, "position", f == 1 && i == 0);
                text.push('\n');
            }
        }
        let lines = parse(&text).unwrap();
        let s = score(&lines, 200, 1);
        assert_eq!(s.tasks["counting"].score, 0.75);
        assert_eq!(s.tasks["position"].score, 0.125);
        assert_eq!(s.tasks["position"].prompts, 2);
        assert!((s.overall - (0.75 + 0.125) / 2.0).abs() < 1e-12);
        assert!(s.interval.0 <= s.overall && s.overall <= s.interval.1);
        assert_eq!(
            relative_file(&lines[5].filename, Path::new("/x/images")),
            "00001/samples/0001.png"
        );
        assert_eq!(
            relative_file(&lines[5].filename, Path::new("/elsewhere")),
            "00001/samples/0001.png"
        );
        let err = parse("{\"filename\": 1}\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}
