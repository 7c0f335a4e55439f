//! The shapes recipe's data half (smaller counts): scenes, rationales over HTTP from
//! the shapes VLM, pairing, patch VQ, tokenize, release, prompt sets; a second run is
//! entirely cached; the judge agrees with every scene's record; every sample carries
//! its codes; the rationales over HTTP are the in-process teacher's, row for row. (The
//! model half is `shapes_models.rs`.)

mod common;

use common::{Project, repo};
use datasets::shapes::{Judge, JudgeOptions, Metadata};
use datasets::table::TableReader;
use schemas::rationale::Rationale;
use schemas::sft_sample::SftSample;
use schemas::source_image::SourceImage;

const SMALL: &[&str] = &[
    "--set",
    "scenes.count=240",
    "--set",
    "vq_corpus.count=200",
    "--set",
    "vq.images=160",
    "--set",
    "vq.holdout=40",
    "--set",
    "rl_prompts.per_task=20",
    "--set",
    "eval_prompts.per_task=20",
    "--target",
    "release",
    "--target",
    "rl_prompts",
    "--target",
    "eval_prompts",
    "--target",
    "contamination",
];

fn args<'a>(cmd: &'a str, recipe: &'a str) -> Vec<&'a str> {
    let mut a = vec![cmd, recipe];
    a.extend_from_slice(SMALL);
    a
}

fn table_dir(p: &Project, node: &str) -> std::path::PathBuf {
    recipe_table_dir(p, "shapes", node)
}

fn recipe_table_dir(p: &Project, recipe: &str, node: &str) -> std::path::PathBuf {
    let store = pipeline::Store::open(&p.store()).unwrap();
    let r = store.get_ref(recipe, node).unwrap().expect("ref");
    store.object_dir(&r.digest)
}

fn table(p: &Project, node: &str) -> TableReader {
    TableReader::open(&table_dir(p, node)).unwrap()
}

#[test]
fn the_shapes_recipe_runs_then_is_cached_and_its_data_is_right() {
    let p = Project::new();
    let recipe = repo("recipes/shapes.toml").display().to_string();
    let first = p.run(&args("run", &recipe)).ok();
    assert!(
        first.text().contains("succeeded: 11 ran"),
        "{}",
        first.text()
    );
    let again = p.run(&args("run", &recipe)).ok();
    assert!(again.text().contains("0 ran, 11 fresh"), "{}", again.text());
    let plan = p.run(&args("plan", &recipe)).ok();
    assert!(plan.stdout.contains("11 fresh, 0 stale"), "{}", plan.stdout);

    // The judge reads every rendered scene as its record says.
    let judge = Judge::new(JudgeOptions::default());
    let mut judged = 0;
    for rows in table(&p, "scenes").rows::<SourceImage>().unwrap() {
        for row in rows.unwrap() {
            let meta: serde_json::Value =
                serde_json::from_str(row.metadata.as_deref().unwrap()).unwrap();
            let record = Metadata::from_json(meta["record"].as_str().unwrap()).unwrap();
            let verdict = judge
                .score_encoded(row.image.bytes.as_deref().unwrap(), &record)
                .unwrap();
            assert!(
                verdict.correct,
                "{}: {:?} for {}",
                row.id, verdict, record.prompt
            );
            judged += 1;
        }
    }
    assert_eq!(judged, 240);

    // Every sample has its rationale, prompts and 16 codes from the patch VQ (one per
    // 16-px block); scenes the lattice repeats are set aside by the pairing as
    // duplicates, with that reason.
    let mut samples = 0;
    for rows in table(&p, "samples").rows::<SftSample>().unwrap() {
        for s in rows.unwrap() {
            assert_eq!(s.image_codes.as_ref().map(Vec::len), Some(16), "{}", s.id);
            assert!(s.tokenizer.as_deref().unwrap().starts_with("patch_vq@"));
            assert!(s.rationale.len() > 40 && s.prompts.short_caption.is_some());
            assert_eq!(s.provenance[0].model, "shapes-vlm");
            samples += 1;
        }
    }
    let dropped = TableReader::open(&table_dir(&p, "pairs").join("dropped"))
        .unwrap()
        .row_count()
        .unwrap();
    assert_eq!(samples + dropped as usize, 240);
    assert!(samples >= 180, "{samples} samples of 240 scenes");

    // The contamination guard read every held-out prompt against every training prompt
    // (five families per sample, one per RL prompt) and found none.
    let guard = p.run(&["show", "shapes/contamination"]).ok();
    assert!(
        guard.stdout.contains("\"overlapping_prompts\":0,"),
        "{}",
        guard.stdout
    );
    assert!(
        guard.stdout.contains("\"benchmark_prompts\":"),
        "{}",
        guard.stdout
    );

    // The release is in the Hugging Face layout.
    let status = p.run(&["show", "shapes/release"]).ok();
    assert!(
        status.stdout.contains("README.md") && status.stdout.contains("SHA256SUMS"),
        "{}",
        status.stdout
    );
}

#[test]
fn held_out_prompts_are_disjoint_from_training_prompts() {
    let p = Project::new();
    let recipe = repo("recipes/shapes.toml").display().to_string();
    let mut a = args("run", &recipe);
    a.extend(["--target", "rl_prompts", "--target", "eval_prompts"]);
    p.run(&a).ok();
    let prompts = |node: &str| -> Vec<String> {
        table(&p, node)
            .rows::<schemas::rl_prompt::RlPrompt>()
            .unwrap()
            .flat_map(|r| r.unwrap())
            .map(|r| r.prompt)
            .collect()
    };
    let train = prompts("rl_prompts");
    let held = prompts("eval_prompts");
    assert!(!train.is_empty() && !held.is_empty());
    for h in &held {
        assert!(!train.contains(h), "{h} is in both splits");
    }
}

#[test]
fn the_shapes_vlm_over_http_writes_the_teachers_rationales() {
    // The recipe's own caption and augment nodes beside the in-process teacher.
    let p = Project::new();
    let recipe = p.write(
        "teacher.toml",
        &format!(
            r#"
[recipe]
name = "teacher"
include = "{}"

[nodes.teacher]
kind = "shapes.teacher"
inputs = {{ scenes = "scenes" }}
config = {{ style = "terse" }}
"#,
            repo("recipes/shapes.toml").display()
        ),
    );
    let recipe = recipe.display().to_string();
    let run = p
        .run(&[
            "run",
            &recipe,
            "--set",
            "scenes.count=120",
            "--target",
            "rationales",
            "--target",
            "teacher",
        ])
        .ok();
    assert!(run.text().contains("succeeded: 4 ran"), "{}", run.text());
    let rows = |node: &str| -> Vec<Rationale> {
        TableReader::open(&recipe_table_dir(&p, "teacher", node))
            .unwrap()
            .rows::<Rationale>()
            .unwrap()
            .flat_map(|r| r.unwrap())
            .collect()
    };
    let (teacher, http) = (rows("teacher"), rows("rationales"));
    assert_eq!(teacher.len(), 120);
    assert_eq!(http.len(), 120);
    let mut original = 0;
    for (t, h) in teacher.iter().zip(&http) {
        assert_eq!(h.id, t.id);
        assert_eq!(h.brief_caption, t.brief_caption, "{}", t.id);
        assert_eq!(h.detailed_caption, t.detailed_caption, "{}", t.id);
        assert_eq!(h.augmented_prompts, t.augmented_prompts, "{}", t.id);
        // Provenance differs by design: the two requests, against the teacher.
        let asked: Vec<(&str, &str)> = h
            .provenance
            .iter()
            .map(|p| (p.task.as_str(), p.model.as_str()))
            .collect();
        assert_eq!(
            asked,
            [("caption", "shapes-vlm"), ("augment", "shapes-vlm")]
        );
        assert_eq!(t.provenance[0].model, "shapes-teacher");
        // Scenes built from a GenEval-style prompt keep it as their short caption.
        let short = h
            .augmented_prompts
            .as_ref()
            .unwrap()
            .short_caption
            .as_deref();
        original += usize::from(short.is_some_and(|c| c.starts_with("a photo of")));
    }
    assert!(
        original > 20,
        "{original} short captions from the scenes' prompts"
    );
}
