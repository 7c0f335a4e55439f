//! `eval.vlm_judge` end to end through the engine, against servers on loopback:
//! the shapes VLM (`builtin:shapes-vlm`), whose per-image verdicts must equal the exact
//! shapes judge's on right and deliberately wrong images; a scripted server whose
//! answers hold no verdict (each counts 0, as `unparsed`, its answer kept; a second
//! node finds every answer in the memo); one that refuses some requests (the node
//! fails, naming the image, unless the failure policy allows them); and a real
//! llama.cpp server (xllamacpp, a tiny random model with a vision projector made by
//! `scripts/llama_server/make_tiny_models.py`), whose answers a grammar or a JSON schema
//! constrains to verdicts, for a GenEval table and a T2I-CompBench table.

use datasets::benchmarks::{Suite, T2iFile, prompts};
use datasets::shapes::{
    HeldOut, Judge, JudgeOptions, SceneGenerator, TaskCounts, prompt_set, render_png,
};
use llm::mock::{Answerer, Fault, MockServer, Rule, Script};
use schemas::ImageData;
use schemas::eval_sample::EvalSample;
use schemas::eval_score::EvalScore;
use schemas::rl_prompt::RlPrompt;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

// llama.cpp's server and the Python that runs it, shared with the root crate's tests.
#[path = "../../../tests/common/llama.rs"]
mod llama;
use llama::{LlamaServer, python};

/// What a judge node left: its score rows, verdicts by sample id, report and meta.
struct Judged {
    scores: Vec<EvalScore>,
    verdicts: HashMap<String, EvalSample>,
    report: String,
    meta: Value,
}

impl Judged {
    fn details(&self, id: &str) -> Value {
        serde_json::from_str(self.verdicts[id].details.as_deref().unwrap()).unwrap()
    }
}

/// Run a recipe of `test.prompts` (node `prompts`), `test.samples` (node `samples`)
/// and the judge nodes `judges` (name, inline config); what each judge left, or its
/// error.
fn run_all(
    prompts: Vec<RlPrompt>,
    samples: Vec<EvalSample>,
    judges: &[(&str, String)],
) -> Vec<Result<Judged, String>> {
    let mut nodes = String::new();
    for (name, config) in judges {
        nodes += &format!(
            "[nodes.{name}]\nkind = \"eval.vlm_judge\"\ninputs = {{ samples = \"samples\", prompts = \"prompts\" }}\nconfig = {config}\n"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let ran = super::harness::run(prompts, samples, &nodes, work.path())
        .unwrap_or_else(|e| panic!("recipe: {e}"));
    judges
        .iter()
        .map(|(name, _)| {
            let digest = ran.output(name)?;
            let out = ran.store.object_dir(&digest);
            Ok(Judged {
                scores: eval::scores::read_scores(&out).unwrap(),
                verdicts: eval::scores::read_verdicts(&out)
                    .unwrap()
                    .into_iter()
                    .map(|v| (v.id.clone(), v))
                    .collect(),
                report: std::fs::read_to_string(out.join("report.md")).unwrap(),
                meta: ran.store.manifest(&digest).unwrap().content.meta,
            })
        })
        .collect()
}

/// [`run_all`] with one judge node, which must succeed.
fn run(prompts: Vec<RlPrompt>, samples: Vec<EvalSample>, config: String) -> Judged {
    run_all(prompts, samples, &[("judge", config)])
        .remove(0)
        .unwrap_or_else(|e| panic!("the judge failed: {e}"))
}

fn sample(id: String, prompt: &RlPrompt, png: Vec<u8>) -> EvalSample {
    EvalSample {
        id,
        benchmark: prompt.family.clone(),
        prompt_id: prompt.id.clone(),
        prompt: prompt.prompt.clone(),
        image: ImageData::from_bytes(png, None),
        ..EvalSample::default()
    }
}

/// Every score row is labelled as the substitute it is.
fn assert_labelled(j: &Judged, model: &str, benchmark: &str) {
    let label = format!("substitute: VLM {model}");
    assert!(!j.scores.is_empty());
    for s in &j.scores {
        assert_eq!(
            (
                s.judge.as_str(),
                s.judge_kind.as_str(),
                s.benchmark.as_str()
            ),
            (label.as_str(), "substitute", benchmark)
        );
    }
    assert_eq!(j.scores[0].task, "overall");
    assert!(j.scores[0].ci95_low.is_some() && j.scores[0].ci95_high.is_some());
    assert!(
        j.report
            .lines()
            .next()
            .unwrap()
            .ends_with(&format!("(substitute judge: VLM {model})")),
        "{}",
        j.report
    );
    assert_eq!(j.meta["judge"], label.as_str());
}

#[test]
fn the_shapes_vlm_gives_the_exact_judges_verdicts() {
    let generated = prompt_set(5, &TaskCounts::uniform(4), &HeldOut::default());
    let rows: Vec<RlPrompt> = generated
        .iter()
        .enumerate()
        .map(|(i, p)| RlPrompt {
            id: format!("shapes-{i:05}"),
            prompt: p.metadata.prompt.clone(),
            family: "shapes".into(),
            tag: Some(p.metadata.tag.tag().to_string()),
            metadata: Some(p.metadata.to_json()),
        })
        .collect();
    let mut scenes = SceneGenerator::new(9);
    let images: Vec<Vec<u8>> = generated
        .iter()
        .map(|p| render_png(&scenes.for_metadata(&p.metadata).unwrap(), 64).unwrap())
        .collect();
    // Each prompt gets its own image, and the image of the next prompt of its task.
    let judge = Judge::new(JudgeOptions::default());
    let mut samples = Vec::new();
    let mut exact = HashMap::new();
    for (i, p) in generated.iter().enumerate() {
        let other = (1..generated.len())
            .map(|k| (i + k) % generated.len())
            .find(|&j| generated[j].metadata.tag == p.metadata.tag)
            .unwrap();
        for (id, png) in [
            (format!("s{i}-own"), &images[i]),
            (format!("s{i}-other"), &images[other]),
        ] {
            let img = image::load_from_memory(png).unwrap().to_rgb8();
            exact.insert(id.clone(), judge.score(&img, &p.metadata).correct);
            samples.push(sample(id, &rows[i], png.clone()));
        }
    }
    let right = exact.values().filter(|&&c| c).count();
    assert!(
        (20..40).contains(&right),
        "{right} of 48 right: the test needs both verdicts"
    );

    let config = r#"{ endpoint = { base_url = "builtin:shapes-vlm", model = "shapes-vlm" }, bootstrap_rounds = 200 }"#;
    let j = run(rows, samples, config.to_string());
    assert_eq!(j.verdicts.len(), 48);
    for (id, correct) in &exact {
        let d = j.details(id);
        assert_eq!(
            j.verdicts[id].score,
            Some(f64::from(u8::from(*correct))),
            "{id}: {d}"
        );
        assert_eq!(d["parsed"], true);
        assert!(d["answer"].as_str().unwrap().contains("\\boxed{"), "{d}");
        assert!(d["answer"].as_str().unwrap().starts_with("The image shows"));
    }
    assert_labelled(&j, "shapes-vlm", "shapes_geneval");
    // Overall: the mean of the six task scores, each the mean over its images.
    let tasks: Vec<&EvalScore> = j.scores[1..].iter().collect();
    assert_eq!(tasks.len(), 6);
    for t in &tasks {
        let ids: Vec<&String> = j
            .verdicts
            .values()
            .filter(|v| v.tag.as_deref() == Some(t.task.as_str()))
            .map(|v| &v.id)
            .collect();
        assert_eq!(ids.len(), 8);
        let want = ids.iter().filter(|id| exact[**id]).count() as f64 / 8.0;
        assert_eq!(t.score, want, "{}", t.task);
    }
    let mean = tasks.iter().map(|t| t.score).sum::<f64>() / 6.0;
    assert!((j.scores[0].score - mean).abs() < 1e-12);
    assert_eq!((j.scores[0].prompts, j.scores[0].images), (24, 48));
    assert_eq!(j.meta["unparsed"], 0);
}

#[test]
fn answers_without_a_verdict_count_zero_and_are_kept() {
    let server = MockServer::start(Script {
        answerer: Some(Answerer(Arc::new(|_| {
            Ok("It looks fine to me.".to_string())
        }))),
        ..Script::default()
    })
    .unwrap();
    let (rows, samples) = t2i_table(2);
    let n = samples.len();
    let config = |rounds: usize| {
        format!(
            r#"{{ endpoint = {{ base_url = "{}", model = "chatty" }}, bootstrap_rounds = {rounds} }}"#,
            server.url()
        )
    };
    // A second node asks the same questions: the memo answers them all.
    let mut out = run_all(
        rows,
        samples,
        &[("judge", config(50)), ("again", config(60))],
    );
    assert_eq!(server.counts().chat, n as u64, "each request sent once");
    let j = out.remove(0).unwrap();
    assert_eq!(out.remove(0).unwrap().meta["unparsed"], n);
    assert_eq!(
        (j.meta["unparsed"].as_u64(), j.meta["images"].as_u64()),
        (Some(n as u64), Some(n as u64))
    );
    assert!(j.scores.iter().all(|s| s.score == 0.0));
    let any = j.verdicts.keys().next().unwrap();
    let d = j.details(any);
    assert_eq!(
        (d["parsed"].clone(), d["answer"].clone()),
        (Value::Bool(false), "It looks fine to me.".into())
    );
    assert!(j.report.contains(&format!("{n} answers held no verdict")));
    assert_labelled(&j, "chatty", "t2i_compbench");
}

#[test]
fn images_without_an_answer_fail_the_node_unless_the_policy_allows_them() {
    let (rows, samples) = t2i_table(2);
    // The server refuses one prompt's requests for good (a 400: not retried).
    let refused = rows
        .iter()
        .find(|p| p.tag.as_deref() == Some("texture"))
        .unwrap()
        .clone();
    let server = MockServer::start(Script {
        answerer: Some(Answerer(Arc::new(|_| Ok("\\boxed{1}".to_string())))),
        rules: vec![Rule::always(Fault::context_length()).when(&refused.prompt)],
        ..Script::default()
    })
    .unwrap();
    let config = |policy: &str| {
        format!(
            r#"{{ endpoint = {{ base_url = "{}", model = "m" }}, bootstrap_rounds = 50{policy} }}"#,
            server.url()
        )
    };
    let mut out = run_all(
        rows,
        samples,
        &[
            ("strict", config("")),
            ("lenient", config(", policy = { allow_failures = 0.25 }")),
        ],
    );
    let e = out.remove(0).err().unwrap();
    assert!(e.contains("2 of 8 images got no answer"), "{e}");
    assert!(e.contains(&format!("sample `{}-0`", refused.id)), "{e}");
    assert!(e.contains("maximum context length"), "{e}");
    let j = out.remove(0).unwrap();
    assert_eq!(
        (j.meta["failed"].as_u64(), j.meta["unparsed"].as_u64()),
        (Some(2), Some(0))
    );
    let d = j.details(&format!("{}-1", refused.id));
    assert!(
        d["failed"]
            .as_str()
            .unwrap()
            .contains("maximum context length"),
        "{d}"
    );
    assert_eq!(j.verdicts[&format!("{}-1", refused.id)].score, Some(0.0));
    // Shape 1 of 1, texture 1 of 2 (its other prompt answered): overall their mean.
    let task = |t: &str| j.scores.iter().find(|s| s.task == t).unwrap().score;
    assert_eq!((task("shape"), task("texture")), (1.0, 0.5));
    assert_eq!(task("overall"), 0.75);
}

/// The first `per` prompts of T2I-CompBench's shape and texture files, each with two
/// shapes-world images.
fn t2i_table(per: usize) -> (Vec<RlPrompt>, Vec<EvalSample>) {
    let mut rows = Vec::new();
    for file in [T2iFile::Shape, T2iFile::Texture] {
        rows.extend(
            prompts(Suite::T2iCompBench(file))
                .unwrap()
                .into_iter()
                .take(per)
                .map(|p| RlPrompt {
                    id: p.id,
                    prompt: p.text,
                    family: "t2i_compbench".into(),
                    tag: Some(p.tag),
                    metadata: None,
                }),
        );
    }
    let samples = images_for(&rows, 2);
    (rows, samples)
}

/// `n` random shapes-world images for each prompt.
fn images_for(rows: &[RlPrompt], n: usize) -> Vec<EvalSample> {
    let mut scenes = SceneGenerator::new(4);
    rows.iter()
        .flat_map(|p| (0..n).map(move |k| (p, k)))
        .map(|(p, k)| {
            let png = render_png(&scenes.random().unwrap(), 64).unwrap();
            sample(format!("{}-{k}", p.id), p, png)
        })
        .collect()
}

#[test]
fn a_llama_cpp_server_judges_geneval_and_t2i_compbench_tables() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = LlamaServer::start(&py, dir.path());
    let endpoint = format!(
        r#"endpoint = {{ base_url = "{}/v1", model = "tiny-random" }}, limits = {{ concurrency = 2, max_attempts = 2 }}, bootstrap_rounds = 100"#,
        server.url
    );

    // GenEval: two prompts of each task, two images each; the grammar constrains answers.
    let mut geneval: Vec<RlPrompt> = Vec::new();
    for p in prompts(Suite::GenEval).unwrap() {
        if geneval
            .iter()
            .filter(|q| q.tag.as_deref() == Some(p.tag.as_str()))
            .count()
            < 2
        {
            geneval.push(RlPrompt {
                id: p.id,
                prompt: p.text,
                family: "geneval".into(),
                tag: Some(p.tag),
                metadata: p.record,
            });
        }
    }
    let geneval_samples = images_for(&geneval, 2);
    let g = run(
        geneval,
        geneval_samples,
        format!("{{ {endpoint}, response_format = \"grammar\", max_tokens = 16 }}"),
    );
    check_constrained(&g, 24, "geneval", 7);
    // T2I-CompBench: a JSON schema constrains the answers.
    let (rows, samples) = t2i_table(3);
    let t = run(
        rows,
        samples,
        format!("{{ {endpoint}, response_format = \"json_schema\", max_tokens = 256 }}"),
    );
    check_constrained(&t, 12, "t2i_compbench", 3);
    for v in t.verdicts.keys() {
        assert!(
            t.details(v)["answer"]["verdict"].is_u64(),
            "{}",
            t.details(v)
        );
    }
    drop(server);
}

/// Every image got an answer that parses; scores complete (overall and `tasks` task
/// rows) and labelled.
fn check_constrained(j: &Judged, images: usize, benchmark: &str, rows: usize) {
    assert_eq!(j.verdicts.len(), images);
    for id in j.verdicts.keys() {
        let d = j.details(id);
        assert_eq!(d["parsed"], true, "{id}: {d}");
        assert!(d.get("failed").is_none(), "{id}: {d}");
        assert!(matches!(j.verdicts[id].score, Some(s) if s == 0.0 || s == 1.0));
    }
    assert_eq!(
        (j.meta["unparsed"].as_u64(), j.meta["failed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(j.scores.len(), rows);
    assert_eq!(j.scores[0].images, images as u64);
    assert_eq!(
        j.scores[1..].iter().map(|s| s.images).sum::<u64>(),
        images as u64
    );
    assert_labelled(j, "tiny-random", benchmark);
}
