//! The benchmarks end to end: the contamination guard over the built-in GenEval suite
//! catches a planted prompt (exactly and after normalisation) and passes a clean set.

mod common;

use common::Project;

/// A recipe: GenEval's prompts guarded against the prompts of `train.txt`.
fn guarded(p: &Project, train: &str, on_overlap: &str) -> String {
    p.write("train.txt", train);
    p.write(
        "guard.toml",
        &format!(
            r#"[recipe]
name = "guard"

[nodes.geneval]
kind = "source.benchmark"
config = {{ suite = "geneval" }}

[nodes.train]
kind = "source.prompts"
config = {{ path = "train.txt", family = "mine" }}

[nodes.guard]
kind = "eval.contamination"
inputs = {{ benchmark = ["geneval"], training = ["train"] }}
config = {{ on_overlap = "{on_overlap}" }}
"#
        ),
    )
    .display()
    .to_string()
}

#[test]
fn the_contamination_guard_catches_planted_prompts_and_passes_a_clean_set() {
    let p = Project::new();
    let clean = "a watercolor of a lighthouse at dusk\na red bicycle leaning on a wall\n";
    let recipe = guarded(&p, clean, "fail");
    let run = p.run(&["run", &recipe]).ok();
    assert!(
        run.text().contains("0 of 553 benchmark prompts"),
        "{}",
        run.text()
    );

    // GenEval's line 0 verbatim, and line 1 in other case and punctuation without
    // "a photo of".
    let planted = format!("{clean}a photo of a bench\nA Cow.\n");
    let recipe = guarded(&p, &planted, "fail");
    let run = p.run(&["run", &recipe]);
    assert_ne!(run.code, Some(0), "{}", run.text());
    let text = run.text();
    assert!(text.contains("2 of 553 benchmark prompts"), "{text}");
    assert!(
        text.contains("`geneval` row `geneval-00000` (“a photo of a bench”) is `train` row `mine-00002` prompt (“a photo of a bench”, exact)"),
        "{text}"
    );

    let recipe = guarded(&p, &planted, "warn");
    let run = p.run(&["run", &recipe]).ok();
    assert!(
        run.text().contains("warning: contamination"),
        "{}",
        run.text()
    );
    let store = pipeline::Store::open(&p.store()).unwrap();
    let r = store.get_ref("guard", "guard").unwrap().expect("ref");
    let lines =
        std::fs::read_to_string(store.object_dir(&r.digest).join("overlaps.jsonl")).unwrap();
    let found: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), 2);
    assert_eq!(found[1]["matched"], "normalised");
    assert_eq!(found[1]["training"]["text"], "A Cow.");
    assert_eq!(found[1]["benchmark"]["text"], "a photo of a cow");
}
