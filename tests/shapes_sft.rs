//! The shapes recipe's model half with tiny counts: a fresh model (`model.init`), SFT
//! with and without the rationale, generation on the held-out and the training-split
//! prompts and shapes-GenEval for both arms; each report holds per-task scores in [0, 1] with
//! their prompt counts and a bootstrap interval around the overall score.

mod common;

use common::{Project, repo};

const TINY: &[&str] = &[
    "--set",
    "scenes.count=120",
    "--set",
    "vq_corpus.count=100",
    "--set",
    "vq.images=80",
    "--set",
    "vq.holdout=20",
    "--set",
    "vq.codebook_size=64",
    "--set",
    "eval_prompts.per_task=12",
    "--set",
    "rl_prompts.per_task=2",
    "--set",
    "sft_rationale.steps=2",
    "--set",
    "sft_plain.steps=2",
    "--set",
    "sft_rationale.eval.max_prompts=3",
    "--set",
    "sft_rationale.eval.generate.max_rationale_tokens=8",
    "--set",
    "sft_plain.eval.max_prompts=3",
    "--set",
    "draw_rationale.samples=1",
    "--set",
    "draw_rationale.max_rationale_tokens=8",
    "--set",
    "draw_plain.samples=1",
    "--set",
    "draw_rationale_train.max_rationale_tokens=8",
    "--set",
    "eval_rationale.bootstrap_rounds=200",
    "--set",
    "eval_plain.bootstrap_rounds=200",
];

fn report(p: &Project, node: &str) -> serde_json::Value {
    let store = pipeline::Store::open(&p.store()).unwrap();
    let r = store.get_ref("shapes", node).unwrap().expect("ref");
    let dir = store.object_dir(&r.digest);
    let path = dir.join("scores.json");
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn both_sft_arms_train_draw_and_are_judged() {
    let p = Project::new();
    let recipe = repo("recipes/shapes.toml").display().to_string();
    let mut args = vec!["run", recipe.as_str()];
    args.extend_from_slice(TINY);
    let evals = [
        "eval_rationale",
        "eval_plain",
        "eval_rationale_train",
        "eval_plain_train",
    ];
    for node in evals {
        args.extend(["--target", node]);
    }
    let run = p.run(&args).ok();
    assert!(run.text().contains("succeeded"), "{}", run.text());
    for node in evals {
        let r = report(&p, node);
        let overall = r["overall"].as_f64().unwrap();
        let (lo, hi) = (
            r["overall_ci95"][0].as_f64().unwrap(),
            r["overall_ci95"][1].as_f64().unwrap(),
        );
        assert!(
            0.0 <= lo && lo <= overall && overall <= hi && hi <= 1.0,
            "{node}: {r}"
        );
        let tasks = r["tasks"].as_object().unwrap();
        assert!(!tasks.is_empty(), "{node}: {r}");
        for (task, t) in tasks {
            let score = t["score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&score), "{node} {task}: {t}");
            assert!(t["prompts"].as_u64().unwrap() >= 1, "{node} {task}: {t}");
        }
    }
    // Each training judged its model on the held-out prompts after its last step.
    let store = pipeline::Store::open(&p.store()).unwrap();
    for node in ["sft_rationale", "sft_plain"] {
        let r = store.get_ref("shapes", node).unwrap().expect("ref");
        let text = std::fs::read_to_string(store.object_dir(&r.digest).join("eval.jsonl")).unwrap();
        let last: serde_json::Value =
            serde_json::from_str(text.lines().last().expect("an evaluation")).unwrap();
        assert_eq!(last["step"], 2, "{node}: {last}");
        assert_eq!(last["prompts"], 3, "{node}: {last}");
    }
}
