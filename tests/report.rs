//! The shapes recipe ends in its report, and `reasongen report` writes the same page
//! from the store: for the `report` node (its lineage) the page is the stage's, title
//! aside; for the whole run it holds every evaluation (the substitute VLM judge's
//! labelled as such), both training runs and the release's card. Tiny counts, as in
//! `shapes_models.rs`.

mod common;

use common::{Project, repo};

const TINY: &[&str] = &[
    "scenes.count=120",
    "vq_corpus.count=100",
    "vq.images=80",
    "vq.holdout=20",
    "vq.codebook_size=64",
    "eval_prompts.per_task=3",
    "rl_prompts.per_task=2",
    "sft_rationale.steps=2",
    "sft_rationale.eval.max_prompts=2",
    "sft_rationale.eval.generate.max_rationale_tokens=8",
    "grpo_rationale.steps=2",
    "grpo_rationale.max_rationale_tokens=8",
    "grpo_rationale.prompts_per_step=2",
    "grpo_rationale.group_size=4",
    "grpo_rationale.max_gen_batches=1",
    "grpo_rationale.micro_batch=8",
    "grpo_rationale.eval.every=0",
    "grpo_rationale.checkpoint_every=0",
    "draw_rationale.samples=1",
    "draw_rationale.max_rationale_tokens=8",
    "draw_grpo.samples=1",
    "draw_grpo.max_rationale_tokens=8",
    "draw_rationale_train.max_rationale_tokens=8",
    "draw_grpo_train.max_rationale_tokens=8",
    "eval_rationale.bootstrap_rounds=100",
    "eval_grpo.bootstrap_rounds=100",
    "eval_rationale_train.bootstrap_rounds=100",
    "eval_grpo_train.bootstrap_rounds=100",
];

/// The page without its `<title>` and `<h1>` (which name what it was made from).
fn untitled(html: &str) -> String {
    let cut = |s: &str, open: &str, close: &str| {
        let a = s.find(open).expect(open);
        let b = a + s[a..].find(close).expect(close);
        format!("{}{}", &s[..a], &s[b..])
    };
    cut(&cut(html, "<title>", "</title>"), "<h1>", "</h1>")
}

#[test]
fn the_recipe_and_the_command_write_the_same_report() {
    let p = Project::new();
    let recipe = repo("recipes/shapes.toml").display().to_string();
    let mut args = vec!["run", recipe.as_str(), "--target", "report"];
    for s in TINY {
        args.extend(["--set", s]);
    }
    let run = p.run(&args).ok();
    assert!(run.text().contains("succeeded"), "{}", run.text());
    let store = pipeline::Store::open(&p.store()).unwrap();
    let r = store.get_ref("shapes", "report").unwrap().expect("ref");
    let staged = std::fs::read_to_string(store.object_dir(&r.digest).join("report.html")).unwrap();

    let node = p.path("node.html").display().to_string();
    let printed = p.run(&["report", "report", "--out", &node]).ok().text();
    assert!(
        printed.contains("node.html (evaluations 5, training runs 2, dataset cards 1,"),
        "{printed}"
    );
    let from_node = std::fs::read_to_string(&node).unwrap();
    assert!(from_node.contains("<h1>reasongen report: node report of recipe shapes</h1>"));
    assert_eq!(untitled(&from_node), untitled(&staged));

    let latest = p.path("latest.html").display().to_string();
    p.run(&["report", "latest", "--out", &latest]).ok();
    let page = std::fs::read_to_string(&latest).unwrap();
    for node in [
        "eval_rationale",
        "eval_grpo",
        "eval_rationale_train",
        "eval_grpo_train",
        "vlm_grpo",
        "<h3>sft_rationale</h3>",
        "<h3>grpo_rationale</h3>",
        "<h3>release</h3>",
    ] {
        assert!(page.contains(node), "{node}");
    }
    assert!(page.contains("<img src=\"data:image/png;base64,"));
    // The VLM judge's scores are labelled as a substitute's, the exact judge's as exact.
    assert!(page.contains("\">substitute judge</span>") && page.contains("\">exact</span>"));
    // The SFT run's loss and the held-out score it measured during training.
    assert!(
        page.contains(">Loss</text>") && page.contains(">Held-out score (95 % interval)</text>")
    );

    let missing = p.run(&["report", "no_such_node"]);
    assert!(
        missing.text().contains("`no_such_node` is neither"),
        "{}",
        missing.text()
    );
}
