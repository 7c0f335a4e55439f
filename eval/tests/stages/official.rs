//! `eval.layout` then `eval.official` through the engine, with stand-in evaluator
//! checkouts written by the test: the same scripts' paths, arguments and output
//! formats as GenEval's and T2I-CompBench's, so the command lines, the parsing into
//! the score table and the per-image verdicts are exercised without their models; and
//! an evaluator that is not installed is named with what is missing.

use super::harness::{Ran, run};
use schemas::ImageData;
use schemas::eval_sample::EvalSample;
use schemas::rl_prompt::RlPrompt;
use std::path::Path;

fn python() -> String {
    std::env::var("REASONGEN_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `n` 8×8 PNGs for each prompt.
fn images(prompts: &[RlPrompt], n: u32) -> Vec<EvalSample> {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(8, 8, image::Rgb([9, 9, 9]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    prompts
        .iter()
        .flat_map(|p| {
            let png = png.clone();
            (0..n).map(move |s| EvalSample {
                id: format!("{}-{s}", p.id),
                benchmark: p.family.clone(),
                prompt_id: p.id.clone(),
                prompt: p.prompt.clone(),
                tag: p.tag.clone(),
                sample: s,
                image: ImageData::from_bytes(png.clone(), None),
                model: "m0".into(),
                ..EvalSample::default()
            })
        })
        .collect()
}

fn geneval_prompts() -> Vec<RlPrompt> {
    datasets::benchmarks::prompts(datasets::benchmarks::Suite::GenEval)
        .unwrap()
        .into_iter()
        .filter(|p| p.tag == "counting" || p.tag == "position")
        .take(2)
        .chain(
            datasets::benchmarks::prompts(datasets::benchmarks::Suite::GenEval)
                .unwrap()
                .into_iter()
                .filter(|p| p.tag == "position")
                .take(1),
        )
        .map(|p| RlPrompt {
            id: p.id,
            prompt: p.text,
            family: "geneval".into(),
            tag: Some(p.tag),
            metadata: p.record,
        })
        .collect()
}

/// GenEval's two scripts as stand-ins: an image is right when its number is even.
fn fake_geneval(dir: &Path) {
    write(
        &dir.join("evaluation/evaluate_images.py"),
        r#"import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("imagedir"); p.add_argument("--outfile"); p.add_argument("--model-path")
a = p.parse_args()
assert os.path.isdir(a.model_path), a.model_path
with open(a.outfile, "w") as out:
    for folder in sorted(os.listdir(a.imagedir)):
        if not folder.isdigit():
            continue
        with open(os.path.join(a.imagedir, folder, "metadata.jsonl")) as f:
            meta = json.load(f)
        for name in sorted(os.listdir(os.path.join(a.imagedir, folder, "samples"))):
            out.write(json.dumps({"filename": os.path.join(a.imagedir, folder, "samples", name), "tag": meta["tag"], "prompt": meta["prompt"], "correct": int(name[:4]) % 2 == 0, "reason": "stand-in", "metadata": json.dumps(meta)}) + "\n")
"#,
    );
    write(
        &dir.join("evaluation/summary_scores.py"),
        "import sys\nprint('stand-in summary of', sys.argv[1].rsplit('/', 1)[-1])\n",
    );
}

/// Importable stand-ins for the modules the evaluators need.
fn stub_modules(dir: &Path, names: &[&str]) {
    for n in names {
        write(&dir.join(n).join("__init__.py"), "");
    }
}

fn official(ran: &Ran, node: &str) -> (Vec<schemas::eval_score::EvalScore>, Vec<EvalSample>) {
    let out = ran.dir_of(node);
    (
        eval::scores::read_scores(&out).unwrap(),
        eval::scores::read_verdicts(&out).unwrap(),
    )
}

#[test]
fn geneval_runs_its_scripts_and_its_results_fill_the_score_table() {
    let work = tempfile::tempdir().unwrap();
    let (checkout, modules, detector) = (
        work.path().join("geneval"),
        work.path().join("modules"),
        work.path().join("detector"),
    );
    fake_geneval(&checkout);
    stub_modules(
        &modules,
        &["mmdet", "open_clip", "clip_benchmark", "pandas"],
    );
    std::fs::create_dir_all(&detector).unwrap();
    let prompts = geneval_prompts();
    let samples = images(&prompts, 4);
    let nodes = format!(
        r#"[nodes.layout]
kind = "eval.layout"
inputs = {{ samples = "samples", prompts = "prompts" }}
[nodes.official]
kind = "eval.official"
inputs = {{ layout = "layout" }}
config = {{ evaluator = "geneval", detector = "detector", python = "{py}", env = {{ PYTHONPATH = "{m}" }} }}
[nodes.bare]
kind = "eval.official"
inputs = {{ layout = "layout" }}
config = {{ evaluator = "geneval", detector = "detector", python = "{py}" }}
[nodes.no_detector]
kind = "eval.official"
inputs = {{ layout = "layout" }}
config = {{ evaluator = "geneval", detector = "elsewhere", python = "{py}", env = {{ PYTHONPATH = "{m}" }} }}
"#,
        py = python(),
        m = modules.display()
    );
    let ran = run(prompts.clone(), samples, &nodes, work.path()).unwrap();
    let (scores, verdicts) = official(&ran, "official");
    let overall = scores.iter().find(|s| s.task == "overall").unwrap();
    // Samples 0 and 2 of every prompt are right: every task scores 0.5.
    assert_eq!(overall.score, 0.5);
    assert_eq!((overall.prompts, overall.images), (3, 12));
    assert!(overall.ci95_low.unwrap() <= 0.5 && 0.5 <= overall.ci95_high.unwrap());
    let tasks: Vec<&str> = scores.iter().map(|s| s.task.as_str()).collect();
    assert_eq!(tasks, vec!["overall", "counting", "position"]);
    assert!(scores.iter().all(|s| s.judge_kind == "official"
        && s.judge.contains("evaluate_images.py")
        && s.benchmark == "geneval"
        && s.model == "m0"));
    assert_eq!(verdicts.len(), 12);
    let v = verdicts
        .iter()
        .find(|v| v.id == format!("{}-1", prompts[0].id))
        .unwrap();
    assert_eq!(v.score, Some(0.0));
    assert_eq!(v.image.path.as_deref(), Some("00000/samples/0001.png"));
    let summary = std::fs::read_to_string(ran.dir_of("official").join("summary.txt")).unwrap();
    assert_eq!(summary.trim(), "stand-in summary of results.jsonl");

    let bare = ran.output("bare").unwrap_err();
    assert!(
        bare.contains("needs Python modules")
            && bare.contains("mmdet")
            && bare.contains("scripts/install_official_evaluators.sh geneval"),
        "{bare}"
    );
    let no_detector = ran.output("no_detector").unwrap_err();
    assert!(
        no_detector.contains("detector folder") && no_detector.contains("elsewhere"),
        "{no_detector}"
    );
}

#[test]
fn an_evaluator_that_is_not_installed_is_named_before_anything_runs() {
    let work = tempfile::tempdir().unwrap();
    let prompts = geneval_prompts();
    let samples = images(&prompts, 4);
    let nodes = r#"[nodes.layout]
kind = "eval.layout"
inputs = { samples = "samples", prompts = "prompts" }
[nodes.official]
kind = "eval.official"
inputs = { layout = "layout" }
config = { evaluator = "missing/geneval", detector = "d" }
"#;
    let err = match run(prompts, samples, nodes, work.path()) {
        Err(e) => e,
        Ok(ran) => ran.output("official").unwrap_err(),
    };
    assert!(
        err.contains("missing/geneval") && err.contains("scripts/install_official_evaluators.sh"),
        "{err}"
    );
}

/// T2I-CompBench's metric scripts as stand-ins writing `vqa_result.json` where the
/// real ones do: BLIP-VQA answers 1 for even positions, CLIPScore 0.25 everywhere.
fn fake_t2i(dir: &Path) {
    let writer = |answer: &str, flag: &str, out: &str| {
        format!(
            r#"import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--{flag}"); p.add_argument("--complex", default="False")
a = p.parse_args()
names = sorted(os.listdir(os.path.join(a.{flag}, "samples")))
os.makedirs(os.path.join(a.{flag}, "{out}"), exist_ok=True)
with open(os.path.join(a.{flag}, "{out}", "vqa_result.json"), "w") as f:
    json.dump([{{"question_id": i, "answer": {answer}}} for i, _ in enumerate(names)], f)
"#
        )
    };
    write(
        &dir.join("BLIPvqa_eval/BLIP_vqa.py"),
        &writer("str(float(i % 2 == 0))", "out_dir", "annotation_blip"),
    );
    write(
        &dir.join("CLIPScore_eval/CLIP_similarity.py"),
        &writer("0.25", "outpath", "annotation_clip"),
    );
    write(
        &dir.join("UniDet_eval/2D_spatial_eval.py"),
        &writer("0", "outpath", "labels/annotation_obj_detection_2d"),
    );
    write(
        &dir.join("3_in_1_eval/3_in_1.py"),
        "raise SystemExit('not used')\n",
    );
}

#[test]
fn t2i_compbench_runs_each_categorys_metric_and_scores_its_answers() {
    let work = tempfile::tempdir().unwrap();
    let (checkout, modules) = (work.path().join("t2i"), work.path().join("modules"));
    fake_t2i(&checkout);
    stub_modules(&modules, &["spacy", "torch", "detectron2"]);
    let prompt = |id: &str, text: &str, tag: &str| RlPrompt {
        id: id.into(),
        prompt: text.into(),
        family: "t2i_compbench".into(),
        tag: Some(tag.into()),
        metadata: None,
    };
    let prompts = vec![
        prompt("color-000", "a green bench and a red car", "color"),
        prompt("color-001", "a blue bird and a brown bear", "color"),
        prompt("non_spatial-000", "a man is reading a book", "non_spatial"),
    ];
    let samples = images(&prompts, 10);
    let nodes = format!(
        r#"[nodes.layout]
kind = "eval.layout"
inputs = {{ samples = "samples", prompts = "prompts" }}
[nodes.official]
kind = "eval.official"
inputs = {{ layout = "layout" }}
config = {{ evaluator = "t2i", python = "{py}", env = {{ PYTHONPATH = "{m}" }} }}
"#,
        py = python(),
        m = modules.display()
    );
    let ran = run(prompts, samples, &nodes, work.path()).unwrap();
    let (scores, verdicts) = official(&ran, "official");
    let by_task = |t: &str| scores.iter().find(|s| s.task == t).unwrap();
    assert_eq!(by_task("color").score, 0.5);
    assert_eq!((by_task("color").prompts, by_task("color").images), (2, 20));
    assert_eq!(by_task("non_spatial").score, 0.25);
    assert!(
        scores
            .iter()
            .all(|s| s.judge_kind == "official" && s.benchmark == "t2i_compbench")
    );
    assert_eq!(verdicts.len(), 30);
    // BLIP numbers images by sorted file name: position 0 is "a blue bird…_000010".
    let first = verdicts.iter().find(|v| v.id == "color-001-0").unwrap();
    assert_eq!(first.score, Some(1.0));
    assert!(
        ran.dir_of("official")
            .join("color_vqa_result.json")
            .is_file()
    );
}
