//! `model.grpo` end to end on a tiny shapes world, its reward over HTTP through a shapes
//! VLM in this test process: a run killed with `kill -9` after a checkpoint and run
//! again resumes there, sends no image to the judge twice, and ends with the model an
//! uninterrupted run ends with (CPU, one thread); the artifact holds the rollouts, the
//! metrics and the curves; each reward leads back to the exact judge request; a judge
//! that keeps failing marks its trajectories failed, and past `max_failed_fraction`
//! fails the node.

mod common;

use common::Project;
use datasets::table::TableReader;
use eval::vlm::ShapesVlm;
use llm::mock::{Answerer, Fault, MockServer, Rule, Script};
use pipeline::Store;
use schemas::rollout::Rollout;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use train::grpo::reward::{judge_config, judge_request, judge_shape};

const STEPS: usize = 4;

fn shapes_vlm() -> MockServer {
    shapes_vlm_failing(vec![])
}

fn shapes_vlm_failing(rules: Vec<Rule>) -> MockServer {
    let vlm = Arc::new(ShapesVlm::default());
    MockServer::start(Script {
        latency: Duration::from_millis(20),
        answerer: Some(Answerer(Arc::new(move |r| vlm.answer_request(r)))),
        rules,
        ..Script::default()
    })
    .unwrap()
}

fn recipe(url: &str) -> String {
    format!(
        r#"
[recipe]
name = "grpo"
seed = 1

[nodes.scenes]
kind = "shapes.scenes"
config = {{ count = 80, size = 64, task_fraction = 0.5, seed = 1, lattice = {{ cells = 16, object_cells = 3, slots = [0, 4, 12] }}, held_out = "bindings" }}

[nodes.rationales]
kind = "shapes.teacher"
inputs = {{ scenes = "scenes" }}
config = {{ style = "terse" }}

[nodes.pairs]
kind = "pair.sft"
inputs = {{ images = "scenes", rationales = "rationales" }}

[nodes.vq]
kind = "tokenizer.patch_vq"
inputs = {{ images = "scenes" }}
config = {{ image_size = 64, patch = 16, codebook_size = 64, images = 60, holdout = 20, seed = 1 }}

[nodes.samples]
kind = "images.tokenize"
inputs = {{ samples = "pairs", tokenizer = "vq" }}

[nodes.rl_prompts]
kind = "shapes.prompts"
config = {{ split = "train", per_task = 2, seed = 2, held_out = "bindings" }}

[nodes.init]
kind = "model.init"
inputs = {{ text = ["samples"], tokenizer = "vq" }}
config = {{ preset = "tiny" }}

[nodes.sft]
kind = "model.sft"
inputs = {{ samples = "samples", model = "init" }}
config = {{ steps = 20, batch_size = 4, lr = 3e-3, seed = 1, checkpoint_every = 0, device = "cpu", threads = 1 }}

[nodes.grpo]
kind = "model.grpo"
inputs = {{ model = "sft", prompts = "rl_prompts", tokenizer = "vq" }}
config = {{ steps = {STEPS}, prompts_per_step = 3, group_size = 4, micro_batch = 6, dynamic_sampling = false, lr = 1e-3, template = "{{}}. Output a richly detailed prompt: ", max_rationale_tokens = 24, rollout_batch = 4, checkpoint_every = 1, device = "cpu", threads = 1, seed = 3, entropy = {{ text = {{ target = 1.0 }}, image = {{ target = 1.0 }} }}, reward = {{ vlm = {{ endpoint = {{ base_url = "{url}", model = "shapes-vlm" }}, limits = {{ concurrency = 4, max_attempts = 2, backoff_initial_secs = 0.01, backoff_max_secs = 0.02 }} }} }} }}
"#
    )
}

/// The folder of node `grpo`'s artifact.
fn grpo_dir(p: &Project) -> PathBuf {
    let store = Store::open(&p.store()).unwrap();
    let r = store
        .get_ref("grpo", "grpo")
        .unwrap()
        .expect("grpo has run");
    store.object_dir(&r.digest)
}

/// Whether some run has a checkpoint of `step`.
fn checkpointed(p: &Project, step: usize) -> bool {
    std::fs::read_dir(p.store().join("checkpoints"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|run| run.path().join(format!("step-{step}")).exists())
}

#[test]
fn a_killed_grpo_run_resumes_without_judging_an_image_twice() {
    // Uninterrupted.
    let straight_server = shapes_vlm();
    let straight = Project::new();
    straight.write("r.toml", &recipe(&straight_server.url()));
    straight.run(&["run", "r.toml"]).ok();
    let want = std::fs::read(grpo_dir(&straight).join("model.safetensors")).unwrap();

    // Killed after the checkpoint of step 2, while no judge request is in flight.
    let server = shapes_vlm();
    let p = Project::new();
    p.write("r.toml", &recipe(&server.url()));
    let mut child = p
        .cmd(&["run", "r.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !(checkpointed(&p, 2) && server.counts().in_flight == 0) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint of step 2"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = server.counts().chat;
    assert!(
        before < straight_server.counts().chat,
        "killed mid-run ({before} judge requests)"
    );

    let again = p.run(&["run", "r.toml"]).ok();
    assert!(
        again
            .text()
            .contains("grpo: resumed from the checkpoint of step"),
        "{}",
        again.text()
    );
    let c = server.counts();
    assert_eq!(c.repeated, 0, "no image judged twice");
    assert_eq!(
        c.chat,
        straight_server.counts().chat,
        "every image judged once"
    );
    let dir = grpo_dir(&p);
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        want,
        "the same model as the uninterrupted run"
    );

    // The artifact: every trajectory with its reward and the judge's request key.
    let rows: Vec<Rollout> = TableReader::open(&dir.join("rollouts"))
        .unwrap()
        .rows::<Rollout>()
        .unwrap()
        .flat_map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), STEPS * 3 * 4);
    assert!(rows.iter().all(|r| {
        r.request_key.is_some()
            && r.judge_answer
                .as_deref()
                .is_some_and(|a| a.contains("\\boxed{"))
            && r.log_prob.is_some()
    }));
    // From a reward to the exact request the judge got: rebuilt from the row's prompt and
    // image, it has the key the row records.
    let judge: llm::LlmConfig = serde_json::from_value(serde_json::json!({
        "endpoint": {"base_url": server.url(), "model": "shapes-vlm"},
        "limits": {"concurrency": 4, "max_attempts": 2, "backoff_initial_secs": 0.01, "backoff_max_secs": 0.02},
    }))
    .unwrap();
    let shape = judge_shape(&judge_config(&judge), &p.path(".")).unwrap();
    for r in rows.iter().take(5) {
        let image = image::load_from_memory(r.image.as_ref().unwrap().bytes.as_deref().unwrap())
            .unwrap()
            .to_rgb8();
        let (key, _) = judge_request(&shape, &r.prompt, &image).unwrap();
        assert_eq!(Some(key.to_hex()), r.request_key, "{}", r.id);
    }
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), STEPS);
    for png in ["reward.png", "entropy.png", "alpha.png", "groups.png"] {
        assert!(dir.join("report").join(png).exists(), "{png}");
    }
}

#[test]
fn judge_failures_are_marked_and_past_the_allowed_fraction_fail_the_node() {
    // Every request about a circle fails with 500s, whatever the retries (the circuit
    // breaker held open, so that the other requests still go).
    let failing =
        || shapes_vlm_failing(vec![Rule::always(Fault::server_error(500)).when("circle")]);
    let recipe = |url: &str, allowed: &str| {
        recipe(url)
            .replace(
                "max_attempts = 2,",
                "max_attempts = 2, breaker = { window = 100000 },",
            )
            .replace("checkpoint_every = 1,", allowed)
    };
    let server = failing();
    let p = Project::new();
    p.write(
        "r.toml",
        &recipe(
            &server.url(),
            "checkpoint_every = 1, max_failed_fraction = 1.0,",
        ),
    );
    p.run(&["run", "r.toml"]).ok();
    let rows: Vec<Rollout> = TableReader::open(&grpo_dir(&p).join("rollouts"))
        .unwrap()
        .rows::<Rollout>()
        .unwrap()
        .flat_map(Result::unwrap)
        .collect();
    let (failed, scored): (Vec<&Rollout>, Vec<&Rollout>) =
        rows.iter().partition(|r| r.prompt.contains("circle"));
    assert!(
        !failed.is_empty() && !scored.is_empty(),
        "{} and {}",
        failed.len(),
        scored.len()
    );
    for r in failed {
        let why = r.failure.as_deref().unwrap_or_default();
        assert!(why.contains("server") && why.contains("500"), "{why}");
        assert_eq!(
            (r.reward, r.advantage, r.kept),
            (0.0, 0.0, Some(false)),
            "{}",
            r.id
        );
        assert!(r.request_key.is_none() && r.judge_answer.is_none());
    }
    for r in scored {
        assert!(
            r.failure.is_none() && r.judge_answer.is_some(),
            "{}: {:?}",
            r.prompt,
            r.failure
        );
    }

    // With the default allowance (5 %), the node fails and says why.
    let server = failing();
    let q = Project::new();
    q.write("r.toml", &recipe(&server.url(), "checkpoint_every = 1,"));
    let run = q.run(&["run", "r.toml"]);
    assert_ne!(run.code, Some(0));
    assert!(
        run.text().contains("the reward failed for")
            && run.text().contains("more than max_failed_fraction = 0.05"),
        "{}",
        run.text()
    );
}
