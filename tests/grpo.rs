//! `model.grpo` end to end on a tiny shapes world, its reward over HTTP through a shapes
//! VLM in this test process: a run killed with `kill -9` after a checkpoint and run
//! again resumes there, sends no image to the judge twice, and ends with the model an
//! uninterrupted run ends with (CPU, one thread); the artifact holds the rollouts, the
//! metrics and the curves.

mod common;

use common::Project;
use datasets::table::TableReader;
use eval::vlm::ShapesVlm;
use llm::mock::{Answerer, MockServer, Script};
use pipeline::Store;
use schemas::rollout::Rollout;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STEPS: usize = 4;

fn shapes_vlm() -> MockServer {
    let vlm = Arc::new(ShapesVlm::default());
    MockServer::start(Script {
        latency: Duration::from_millis(20),
        answerer: Some(Answerer(Arc::new(move |r| vlm.answer_request(r)))),
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
config = {{ steps = {STEPS}, prompts_per_step = 3, group_size = 4, micro_batch = 6, dynamic_sampling = false, lr = 1e-3, template = "{{}}. Output a richly detailed prompt: ", max_rationale_tokens = 24, rollout_batch = 4, checkpoint_every = 1, device = "cpu", threads = 1, seed = 3, entropy = {{ text = {{ target = 1.0 }}, image = {{ target = 1.0 }} }}, reward = {{ vlm = {{ endpoint = {{ base_url = "{url}", model = "shapes-vlm" }}, limits = {{ concurrency = 4 }} }} }} }}
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
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), STEPS);
    for png in ["reward.png", "entropy.png", "alpha.png", "groups.png"] {
        assert!(dir.join("report").join(png).exists(), "{png}");
    }
}
