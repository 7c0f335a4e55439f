//! The benchmarks end to end: the contamination guard over the built-in GenEval suite
//! catches a planted prompt (exactly and after normalisation) and passes a clean set;
//! `reasongen trace` leads from a score (the score table, one task, one image) through
//! the drawing, the model and its training to the SFT samples and the rationale rows
//! an LLM wrote, with their request keys.

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

/// A tiny recipe whose rationales come from an LLM over HTTP (the mock server on
/// loopback): scenes → `rationale.caption` → pairs → codes → SFT → drawing → the shapes
/// judge → one score table.
fn llm_rationale_recipe(p: &Project, url: &str) -> String {
    p.write(
        "traced.toml",
        &format!(
            r#"[recipe]
name = "traced"
seed = 1

[nodes.scenes]
kind = "shapes.scenes"
config = {{ count = 60, size = 64, task_fraction = 0.5, seed = 1, lattice = {{ cells = 16, object_cells = 3, slots = [0, 4, 12] }}, held_out = "bindings" }}

[nodes.captions]
kind = "rationale.caption"
inputs = {{ images = "scenes" }}
config = {{ endpoint = {{ base_url = "{url}", model = "mock-vlm" }} }}

[nodes.pairs]
kind = "pair.sft"
inputs = {{ images = "scenes", rationales = "captions" }}

[nodes.vq]
kind = "tokenizer.patch_vq"
inputs = {{ images = "scenes" }}
config = {{ image_size = 64, patch = 16, codebook_size = 64, images = 40, holdout = 10, seed = 1 }}

[nodes.samples]
kind = "images.tokenize"
inputs = {{ samples = "pairs", tokenizer = "vq" }}

[nodes.prompts]
kind = "shapes.prompts"
config = {{ split = "train", per_task = 1, seed = 2, held_out = "bindings" }}

[nodes.init]
kind = "model.init"
inputs = {{ text = ["samples"], tokenizer = "vq" }}
config = {{ preset = "tiny" }}

[nodes.sft]
kind = "model.sft"
inputs = {{ samples = "samples", model = "init" }}
config = {{ steps = 3, batch_size = 4, lr = 3e-3, seed = 1, checkpoint_every = 0, device = "cpu", threads = 1 }}

[nodes.draw]
kind = "model.generate"
inputs = {{ prompts = "prompts", model = "sft", tokenizer = "vq" }}
config = {{ samples = 2, max_rationale_tokens = 8, cfg_weight = 1.0, batch_size = 8, device = "cpu" }}

[nodes.eval]
kind = "eval.shapes_geneval"
inputs = {{ samples = "draw", prompts = "prompts" }}

[nodes.scores]
kind = "eval.scores"
inputs = {{ evals = ["eval"] }}
"#
        ),
    )
    .display()
    .to_string()
}

#[test]
fn trace_leads_from_a_score_to_the_rationale_rows_and_their_request_keys() {
    let server = llm::mock::MockServer::start(llm::mock::Script::default()).unwrap();
    let p = Project::new();
    let recipe = llm_rationale_recipe(&p, &server.url());
    p.run(&["run", &recipe]).ok();
    let store = pipeline::Store::open(&p.store()).unwrap();
    let captions = store.get_ref("traced", "captions").unwrap().unwrap();
    let keys: Vec<String> = {
        let dir = store.object_dir(&captions.digest);
        datasets::table::TableReader::open(&dir)
            .unwrap()
            .rows::<schemas::rationale::Rationale>()
            .unwrap()
            .flat_map(|b| b.unwrap())
            .flat_map(|r| r.provenance.into_iter().map(|p| p.request_key))
            .collect()
    };
    assert_eq!(keys.len(), 60);

    let text = p.run(&["trace", "eval", "--limit", "3"]).ok().text();
    println!("{text}");
    for step in [
        "score   `eval` (eval.shapes_geneval",
        "images  ",
        "drawn by `draw` (model.generate",
        "model   `sft` (model.sft",
        "  from  `init` (model.init",
        "SFT     ",
        "rationales from `captions` (rationale.caption",
        "rationale row `",
        "caption by mock-vlm with template caption@v1, request key ",
    ] {
        assert!(text.contains(step), "no `{step}` in:\n{text}");
    }
    // The request keys printed are the rationale rows' own.
    let printed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("request key ").nth(1))
        .collect();
    assert!(!printed.is_empty());
    assert!(
        printed.iter().all(|k| keys.iter().any(|key| key == k)),
        "{printed:?}"
    );

    // The same chain from the score table, from one task, and from one image.
    let all = p.run(&["trace", "scores"]).ok().text();
    assert!(all.contains("rationales from `captions`"), "{all}");
    let task = p.run(&["trace", "eval:counting"]).ok().text();
    assert!(task.contains("counting:"), "{task}");
    let one = text
        .lines()
        .skip_while(|l| !l.starts_with("images  "))
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("an image line")
        .to_string();
    let image = p.run(&["trace", &format!("eval#{one}")]).ok().text();
    assert!(image.contains("1 of ") && image.contains(&one), "{image}");
    let wrong = p.run(&["trace", "eval:nope"]);
    assert_ne!(wrong.code, Some(0));
    assert!(wrong.text().contains("no task `nope`"), "{}", wrong.text());
}
