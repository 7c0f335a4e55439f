//! The shapes recipes' model half with tiny counts (`recipes/shapes_ablation.toml`,
//! which includes `recipes/shapes.toml`): a fresh model (`model.init`), SFT and GRPO with
//! and without the rationale (GRPO judged over HTTP by the shapes VLM), generation on
//! the held-out and the training-split prompts and shapes-GenEval for every arm, the
//! GRPO arms against their SFT models with a paired interval.

mod common;

use common::{Project, repo};
use datasets::table::TableReader;
use schemas::rollout::Rollout;

const TINY: &[&str] = &[
    "scenes.count=120",
    "vq_corpus.count=100",
    "vq.images=80",
    "vq.holdout=20",
    "vq.codebook_size=64",
    "eval_prompts.per_task=12",
    "rl_prompts.per_task=2",
    "sft_rationale.steps=2",
    "sft_plain.steps=2",
    "sft_rationale.eval.max_prompts=3",
    "sft_rationale.eval.generate.max_rationale_tokens=8",
    "sft_plain.eval.max_prompts=3",
    "grpo_rationale.steps=2",
    "grpo_plain.steps=2",
    "grpo_rationale.max_rationale_tokens=8",
    "grpo_rationale.eval.max_prompts=3",
    "grpo_rationale.eval.generate.max_rationale_tokens=8",
    "grpo_plain.eval.max_prompts=3",
    "draw_rationale.samples=1",
    "draw_rationale.max_rationale_tokens=8",
    "draw_plain.samples=1",
    "draw_grpo.samples=1",
    "draw_grpo.max_rationale_tokens=8",
    "draw_grpo_plain.samples=1",
    "draw_rationale_train.max_rationale_tokens=8",
    "draw_grpo_train.max_rationale_tokens=8",
    "eval_rationale.bootstrap_rounds=200",
    "eval_plain.bootstrap_rounds=200",
    "eval_grpo.bootstrap_rounds=200",
    "eval_grpo_plain.bootstrap_rounds=200",
];

/// Settings every GRPO arm takes: two steps of two prompts in groups of four.
const GRPO: &[&str] = &[
    "prompts_per_step=2",
    "group_size=4",
    "max_gen_batches=1",
    "micro_batch=8",
    "eval.every=0",
    "checkpoint_every=0",
];

fn artifact(p: &Project, node: &str) -> std::path::PathBuf {
    let store = pipeline::Store::open(&p.store()).unwrap();
    let r = store
        .get_ref("shapes-ablation", node)
        .unwrap()
        .expect("ref");
    store.object_dir(&r.digest)
}

fn report(p: &Project, node: &str) -> serde_json::Value {
    let path = artifact(p, node).join("scores.json");
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn every_arm_trains_draws_and_is_judged() {
    let p = Project::new();
    let recipe = repo("recipes/shapes_ablation.toml").display().to_string();
    let mut sets: Vec<String> = TINY.iter().map(|s| s.to_string()).collect();
    for arm in ["grpo_rationale", "grpo_plain"] {
        sets.extend(GRPO.iter().map(|s| format!("{arm}.{s}")));
    }
    let mut args = vec!["run", recipe.as_str()];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let evals = [
        "eval_rationale",
        "eval_plain",
        "eval_rationale_train",
        "eval_grpo",
        "eval_grpo_plain",
        "eval_grpo_train",
        "eval_grpo_plain_train",
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
        if node.starts_with("eval_grpo") {
            // The difference from the SFT model, on the same prompts.
            let v = &r["versus_baseline"];
            let base = v["baseline_overall"].as_f64().unwrap();
            let d = v["difference"].as_f64().unwrap();
            assert!((d - (overall - base)).abs() < 1e-9, "{node}: {v}");
            let (dlo, dhi) = (
                v["difference_ci95"][0].as_f64().unwrap(),
                v["difference_ci95"][1].as_f64().unwrap(),
            );
            assert!(dlo <= d && d <= dhi, "{node}: {v}");
        }
    }
    // Each training judged its model on the held-out prompts after its last step.
    for (node, steps) in [
        ("sft_rationale", 2),
        ("sft_plain", 2),
        ("grpo_rationale", 2),
        ("grpo_plain", 2),
    ] {
        let text = std::fs::read_to_string(artifact(&p, node).join("eval.jsonl")).unwrap();
        let last: serde_json::Value =
            serde_json::from_str(text.lines().last().expect("an evaluation")).unwrap();
        assert_eq!(last["step"], steps, "{node}: {last}");
        assert_eq!(last["prompts"], 3, "{node}: {last}");
    }
    // GRPO's rollouts: every trajectory, rewarded by the judge over HTTP, with the
    // rationale in the rationale arm only.
    for (node, rationale) in [("grpo_rationale", true), ("grpo_plain", false)] {
        let rows: Vec<Rollout> = TableReader::open(&artifact(&p, node).join("rollouts"))
            .unwrap()
            .rows::<Rollout>()
            .unwrap()
            .flat_map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 2 * 2 * 4, "{node}");
        for r in &rows {
            assert!(r.reward == 0.0 || r.reward == 1.0, "{node}: {r:?}");
            assert!(
                r.request_key.is_some() && r.judge_answer.is_some(),
                "{node}: {r:?}"
            );
            assert_eq!(r.rationale.is_empty(), !rationale, "{node}: {r:?}");
            assert_eq!(r.image_codes.len(), 16);
        }
    }
}
