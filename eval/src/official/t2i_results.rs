//! T2I-CompBench's `vqa_result.json` read back (`[{question_id, answer}]`, the answer
//! a number or a string of one) and tied to the layout's files: the detector-based
//! metrics (UniDet, 3-in-1) number images by their global index (the file name's
//! `NNNNNN`), BLIP-VQA and CLIPScore by position in the sorted file names. A
//! category's score is the mean answer; its 95 % interval resamples prompts.

use crate::bootstrap::mean_interval;
use crate::layout::LaidFile;
use crate::scores::ScoreContext;
use schemas::ImageData;
use schemas::eval_sample::EvalSample;
use schemas::eval_score::EvalScore;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub question_id: u64,
    pub score: f64,
}

/// Parse a `vqa_result.json`.
pub fn parse(text: &str) -> Result<Vec<Answer>, String> {
    let rows: Vec<Value> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let number = |v: &Value| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            };
            Ok(Answer {
                question_id: number(&r["question_id"])
                    .ok_or(format!("entry {i}: no question_id"))?
                    as u64,
                score: number(&r["answer"]).ok_or(format!("entry {i}: answer is not a number"))?,
            })
        })
        .collect()
}

/// The global index of a T2I-CompBench file (`…_000123.png` → 123).
fn global_index(file: &str) -> Option<u64> {
    file.rsplit_once('_')?.1.strip_suffix(".png")?.parse().ok()
}

/// A category's score row and its images' verdicts.
pub fn category(
    name: &str,
    answers: &[Answer],
    files: &[&LaidFile],
    context: &ScoreContext,
    rounds: usize,
) -> Result<(EvalScore, Vec<EvalSample>), String> {
    if answers.len() != files.len() {
        return Err(format!(
            "{name}: {} answers for {} images",
            answers.len(),
            files.len()
        ));
    }
    let by_index = matches!(name, "spatial" | "complex");
    let mut sorted: Vec<&LaidFile> = files.to_vec();
    sorted.sort_by(|a, b| a.file.cmp(&b.file));
    let index: BTreeMap<u64, &LaidFile> = files
        .iter()
        .filter_map(|f| Some((global_index(&f.file)?, *f)))
        .collect();
    let mut per_prompt: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut verdicts = Vec::new();
    for a in answers {
        let file = if by_index {
            index.get(&a.question_id).copied()
        } else {
            sorted.get(a.question_id as usize).copied()
        }
        .ok_or_else(|| format!("{name}: question_id {} names no image", a.question_id))?;
        per_prompt.entry(&file.prompt_id).or_default().push(a.score);
        verdicts.extend(file.sample_ids.iter().map(|id| EvalSample {
            id: id.clone(),
            benchmark: context.benchmark.clone(),
            prompt_id: file.prompt_id.clone(),
            prompt: file.prompt.clone(),
            tag: file.tag.clone(),
            image: ImageData {
                bytes: None,
                path: Some(file.file.clone()),
            },
            score: Some(a.score),
            details: Some(json!({"answer": a.score, "question_id": a.question_id}).to_string()),
            model: context.model.clone(),
            ..EvalSample::default()
        }));
    }
    let means: Vec<f64> = per_prompt
        .values()
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
        .collect();
    let (score, lo, hi) = mean_interval(&means, rounds, 0.95, 0);
    Ok((
        context.row(name, score, Some((lo, hi)), means.len(), answers.len()),
        verdicts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(prompt: &str, n: u64) -> LaidFile {
        LaidFile {
            file: format!("spatial/samples/{prompt}_{n:06}.png"),
            prompt_id: prompt.into(),
            prompt: prompt.into(),
            tag: Some("spatial".into()),
            sample_ids: vec![format!("{prompt}-{n}")],
        }
    }

    #[test]
    fn answers_are_tied_to_images_by_index_or_by_sorted_position() {
        let context = ScoreContext::from_images_json(&json!({
            "benchmark": "t2i_compbench", "prompt_set": "t2i_compbench", "prompt_set_version": "v",
            "model": "m", "samples": "s", "settings": null,
        }))
        .unwrap();
        // "b" comes first in the val file (indices 0, 1), "a" second (2, 3).
        let files = [file("b", 0), file("b", 1), file("a", 2), file("a", 3)];
        let refs: Vec<&LaidFile> = files.iter().collect();
        let answers = parse(r#"[{"question_id": 0, "answer": "1.0"}, {"question_id": 1, "answer": 1}, {"question_id": 2, "answer": 0}, {"question_id": 3, "answer": "0"}]"#).unwrap();
        let (row, v) = category("spatial", &answers, &refs, &context, 100).unwrap();
        assert_eq!(row.score, 0.5);
        assert_eq!(row.prompts, 2);
        assert_eq!(v[0].id, "b-0");
        assert_eq!(v[0].score, Some(1.0));
        // By sorted file name, question 0 is `a_000002.png`.
        let (_, v) = category("color", &answers, &refs, &context, 100).unwrap();
        assert_eq!(v[0].id, "a-2");
        assert!(
            category("color", &answers[..3], &refs, &context, 10)
                .unwrap_err()
                .contains("3 answers for 4 images")
        );
        assert!(
            parse(r#"[{"question_id": 0, "answer": "yes"}]"#)
                .unwrap_err()
                .contains("not a number")
        );
    }
}
