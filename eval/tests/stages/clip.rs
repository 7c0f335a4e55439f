//! `eval.clip` through the engine on the tiny random CLIP of `tests/data/tiny_clip`
//! (`scripts/make_tiny_clip.py`): T2I-CompBench's CLIPScore over a table, every row
//! labelled a substitute, the category's score the mean of its images' cosines; a
//! missing weights folder stops the run before anything is judged.

use super::harness::run;
use schemas::ImageData;
use schemas::eval_sample::EvalSample;
use schemas::rl_prompt::RlPrompt;
use std::path::Path;

fn tiny_clip() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tiny_clip")
        .display()
        .to_string()
}

fn table() -> (Vec<RlPrompt>, Vec<EvalSample>) {
    let png = std::fs::read(Path::new(&tiny_clip()).join("square_red_blue.png")).unwrap();
    let noise = std::fs::read(Path::new(&tiny_clip()).join("square_noise.png")).unwrap();
    let prompts: Vec<RlPrompt> = ["a red square and a blue circle", "a dog is chasing a ball"]
        .iter()
        .enumerate()
        .map(|(i, t)| RlPrompt {
            id: format!("non_spatial-{i:03}"),
            prompt: t.to_string(),
            family: "t2i_compbench".into(),
            tag: Some("non_spatial".into()),
            metadata: None,
        })
        .collect();
    let samples = prompts
        .iter()
        .flat_map(|p| {
            [&png, &noise]
                .into_iter()
                .enumerate()
                .map(|(s, bytes)| EvalSample {
                    id: format!("{}-{s}", p.id),
                    benchmark: "t2i_compbench".into(),
                    prompt_id: p.id.clone(),
                    prompt: p.prompt.clone(),
                    tag: p.tag.clone(),
                    sample: s as u32,
                    image: ImageData::from_bytes(bytes.clone(), None),
                    model: "m1".into(),
                    ..EvalSample::default()
                })
        })
        .collect();
    (prompts, samples)
}

#[test]
fn clipscore_runs_as_a_node_and_is_labelled_a_substitute() {
    let work = tempfile::tempdir().unwrap();
    let (prompts, samples) = table();
    let nodes = format!(
        r#"[nodes.clip]
kind = "eval.clip"
inputs = {{ samples = "samples", prompts = "prompts" }}
config = {{ weights = "{w}", task = "t2i_clipscore", batch_size = 3 }}
[nodes.scores]
kind = "eval.scores"
inputs = {{ evals = ["clip"] }}
"#,
        w = tiny_clip()
    );
    let ran = run(prompts, samples, &nodes, work.path()).unwrap();
    let out = ran.dir_of("clip");
    let scores = eval::scores::read_scores(&out).unwrap();
    let verdicts = eval::scores::read_verdicts(&out).unwrap();
    assert_eq!(verdicts.len(), 4);
    let cosines: Vec<f64> = verdicts.iter().map(|v| v.score.unwrap()).collect();
    assert!(
        cosines.iter().all(|c| (-1.0..=1.0).contains(c)),
        "{cosines:?}"
    );
    let mean = cosines.iter().sum::<f64>() / 4.0;
    let category = scores.iter().find(|s| s.task == "non_spatial").unwrap();
    assert!(
        (category.score - mean).abs() < 1e-9,
        "{} vs {mean}",
        category.score
    );
    assert_eq!((category.prompts, category.images), (2, 4));
    assert!(scores.iter().all(|s| s.judge_kind == "substitute"
        && s.judge.starts_with("substitute: CLIP")
        && s.model == "m1"));
    // The collected table names the report each row came from.
    let collected: Vec<schemas::eval_score::EvalScore> =
        eval::scores::read_all(&ran.dir_of("scores")).unwrap();
    assert_eq!(collected.len(), scores.len());
    let clip = ran.output("clip").unwrap().to_hex();
    assert!(collected.iter().all(|s| s.eval_report == clip));

    let (prompts, samples) = table();
    let missing = r#"[nodes.clip]
kind = "eval.clip"
inputs = { samples = "samples", prompts = "prompts" }
config = { weights = "no/such/clip", task = "t2i_clipscore" }
"#;
    let err = match run(prompts, samples, missing, work.path()) {
        Err(e) => e,
        Ok(ran) => ran.output("clip").unwrap_err(),
    };
    assert!(err.contains("no/such/clip"), "{err}");
}
