//! The shapes recipe's data half (smaller counts): scenes, teacher, pairing, patch VQ,
//! tokenize, release, prompt sets; a second run is entirely cached; the judge agrees
//! with every scene's record; every sample carries its codes. (The model half is
//! `shapes_models.rs`.)

mod common;

use common::{Project, repo};
use datasets::shapes::{Judge, JudgeOptions, Metadata};
use datasets::table::TableReader;
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
    let store = pipeline::Store::open(&p.store()).unwrap();
    let r = store.get_ref("shapes", node).unwrap().expect("ref");
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
        first.text().contains("succeeded: 10 ran"),
        "{}",
        first.text()
    );
    let again = p.run(&args("run", &recipe)).ok();
    assert!(again.text().contains("0 ran, 10 fresh"), "{}", again.text());
    let plan = p.run(&args("plan", &recipe)).ok();
    assert!(plan.stdout.contains("10 fresh, 0 stale"), "{}", plan.stdout);

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
            assert_eq!(s.provenance[0].model, "shapes-teacher");
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
