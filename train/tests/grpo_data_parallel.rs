//! Data-parallel GRPO on the tiny preset with thread ranks: two ranks (with and without
//! ZeRO-1), each drawing half the prompts' groups, take the one-rank steps of a short
//! run — the same rollouts, rewards and kept groups, the same gradient norms and entropy coefficients, and weights within
//! tolerance — with only the root writing the rollout tables; the `data_parallel`
//! setting at one rank leaves the canonical config (so run keys) as it was. The
//! rewards are the exact shapes judge's on images a test tokenizer draws from the
//! codes (the right scene or none, by the first code), so groups have mixed rewards.

use candle_core::{DType, Device, Tensor};
use datasets::shapes::{HeldOut, Judge, JudgeOptions, SceneGenerator, TaskCounts};
use datasets::shapes::{prompt_set, render};
use image::RgbImage;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use train::core::harness::Trainer as _;
use train::core::params::Params;
use train::dist::Replica;
use train::dist::collective::Collective;
use train::dist::threads::group;
use train::grpo::reward::Rewarder;
use train::grpo::trainer::{Prompt, Setup};
use train::grpo::{GrpoConfig, StepMetrics, Trainer};
use train::janus::JanusConfig;
use train::janus::text::TextTokenizer;
use train::tokenizer::ImageTokenizer;

const TEXT_VOCAB: usize = 320;
const IMAGE_VOCAB: usize = 64;
const CODES: usize = 12;
const STEPS: usize = 2;

fn text() -> TextTokenizer {
    let path: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/janus/tokenizer.json");
    TextTokenizer::from_file(&path).unwrap()
}

fn model_config() -> JanusConfig {
    JanusConfig::tiny(TEXT_VOCAB, IMAGE_VOCAB)
}

/// Decodes codes to the prompt's scene when the first code is even, to an empty
/// picture otherwise.
struct Scenes {
    right: RgbImage,
    wrong: RgbImage,
}

impl ImageTokenizer for Scenes {
    fn kind(&self) -> &'static str {
        "test_scenes"
    }
    fn image_size(&self) -> u32 {
        64
    }
    fn tokens(&self) -> usize {
        CODES
    }
    fn codebook_size(&self) -> u32 {
        IMAGE_VOCAB as u32
    }
    fn encode(&self, _: &RgbImage) -> Result<Vec<u16>, String> {
        Err("the test tokenizer only decodes".into())
    }
    fn decode(&self, codes: &[u16]) -> Result<RgbImage, String> {
        let even = codes.first().is_some_and(|c| c % 2 == 0);
        Ok(if even { &self.right } else { &self.wrong }.clone())
    }
}

/// Four prompts a step in groups of four, two mini-batches of four micro-batches of
/// two trajectories; every group kept; the entropy controllers and the KL term on.
fn config() -> GrpoConfig {
    serde_json::from_value(json!({
        "steps": STEPS,
        "prompts_per_step": 4,
        "group_size": 4,
        "ppo_mini_batches": 2,
        "micro_batch": 2,
        "max_gen_batches": 1,
        "dynamic_sampling": false,
        "lr": 1e-3,
        "kl_coef": 0.01,
        "entropy": {"enabled": true, "lr": 0.1},
        "max_rationale_tokens": 6,
        "rollout_batch": 3,
        "overlap": false,
        "reward": "shapes",
        "seed": 3,
        "checkpoint_every": 0,
    }))
    .unwrap()
}

/// The initial weights, as named tensors every rank copies.
fn initial() -> (Vec<String>, HashMap<String, Tensor>) {
    let params = Params::random(&model_config(), &Device::Cpu).unwrap();
    let names = params.names.clone();
    (names, params.tensors().into_iter().collect())
}

fn trainer(
    init: &(Vec<String>, HashMap<String, Tensor>),
    replica: Option<Replica>,
    rollouts: &Path,
) -> Trainer {
    let records = prompt_set(1, &TaskCounts::uniform(2), &HeldOut::default());
    let right = &records[0].metadata;
    let scene = render(&SceneGenerator::new(2).for_metadata(right).unwrap(), 64);
    let images = Arc::new(Scenes {
        // The background alone.
        wrong: RgbImage::from_pixel(64, 64, *scene.get_pixel(0, 0)),
        right: scene,
    });
    let prompts = (0..6)
        .map(|i| Prompt {
            id: format!("p{i}"),
            text: right.prompt.clone(),
            record: Some(right.clone()),
        })
        .collect();
    let root = replica.as_ref().is_none_or(|r| r.comm.rank() == 0);
    Trainer::new(Setup {
        config: config(),
        model_config: model_config(),
        text: text(),
        images,
        params: Params::from_tensors(&init.0, &init.1).unwrap(),
        prompts,
        rewarder: root.then(|| Rewarder::Shapes(Judge::new(JudgeOptions::default()))),
        dtype: DType::F32,
        model_id: "test".into(),
        rollouts: rollouts.to_path_buf(),
        replica,
    })
    .unwrap()
}

fn weights(t: &Trainer) -> Vec<f32> {
    t.stepper()
        .params()
        .vars
        .iter()
        .flat_map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

struct Run {
    weights: Vec<f32>,
    metrics: Vec<StepMetrics>,
    state_bytes: usize,
    tables: usize,
}

fn run(init: &(Vec<String>, HashMap<String, Tensor>), replica: Option<Replica>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(init, replica, dir.path());
    let metrics = (0..STEPS).map(|_| t.train_step().unwrap()).collect();
    Run {
        weights: weights(&t),
        metrics,
        state_bytes: t.stepper().memory().optimizer_state_bytes,
        tables: t.rollout_tables().unwrap().len(),
    }
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-4 * a.abs().max(1e-3),
        "{what}: {a} vs {b}"
    );
}

/// Two ranks (ZeRO stage `zero1`) against one.
fn check(zero1: bool) {
    let init = initial();
    let start = Params::from_tensors(&init.0, &init.1).unwrap();
    let start: Vec<f32> = start
        .vars
        .iter()
        .flat_map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect();
    let single = run(&init, None);
    let moved = max_difference(&start, &single.weights);
    assert!(moved > 1e-4, "training moves the weights: {moved}");
    let m = &single.metrics;
    assert!(
        m.iter()
            .any(|m| m.groups_all_zero + m.groups_all_one < m.groups),
        "some group has mixed rewards: {m:?}"
    );
    assert!(
        m.iter().all(|m| m.alpha_text != 0.0),
        "the controllers move"
    );
    assert_eq!(single.tables, STEPS);
    let ranks: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = group(2)
            .into_iter()
            .map(|rank| {
                let init = &init;
                s.spawn(move || {
                    let comm: Arc<dyn Collective> = Arc::new(rank);
                    run(init, Some(Replica { comm, zero1 }))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (rank, r) in ranks.iter().enumerate() {
        let diff = max_difference(&single.weights, &r.weights);
        // Sums in another order; AdamW's step on a near-zero gradient (≈ lr) amplifies
        // that, so the bound is above SFT's and well below the weights' movement
        // (~4e-3) and a mis-scaled gradient's (~3e-4).
        assert!(
            diff < 5e-5,
            "zero1 {zero1}, rank {rank}: weights differ by {diff}"
        );
        for (a, b) in single.metrics.iter().zip(&r.metrics) {
            assert_eq!(
                (a.trajectories, a.groups_kept, a.groups_all_zero, a.tokens),
                (b.trajectories, b.groups_kept, b.groups_all_zero, b.tokens),
                "rank {rank}, step {}",
                a.step
            );
            assert_eq!(
                a.reward_mean, b.reward_mean,
                "rank {rank}: the same rewards"
            );
            close(a.grad_norm, b.grad_norm, "grad norm");
            close(a.grad_norm_max, b.grad_norm_max, "largest grad norm");
            close(a.policy_loss, b.policy_loss, "policy loss");
            close(a.alpha_text, b.alpha_text, "text α");
            close(a.alpha_image, b.alpha_image, "image α");
            close(a.approx_kl, b.approx_kl, "approximate KL");
        }
    }
    let diffs: Vec<f32> = ranks
        .iter()
        .map(|r| max_difference(&single.weights, &r.weights))
        .collect();
    let norms = |r: &Run| r.metrics.iter().map(|m| m.grad_norm).collect::<Vec<_>>();
    let seconds =
        |r: &Run, f: fn(&StepMetrics) -> f64| r.metrics.iter().map(f).sum::<f64>() / STEPS as f64;
    println!(
        "zero1 {zero1}: weights within {diffs:?} of one rank (moved {moved}); grad norms {:?} vs {:?}; \
         s/step rollout {:.3} vs {:.3}, update {:.3} vs {:.3}; optimizer bytes {} vs {:?}",
        norms(&single),
        norms(&ranks[0]),
        seconds(&single, |m| m.rollout_seconds),
        seconds(&ranks[0], |m| m.rollout_seconds),
        seconds(&single, |m| m.update_seconds),
        seconds(&ranks[0], |m| m.update_seconds),
        single.state_bytes,
        ranks.iter().map(|r| r.state_bytes).collect::<Vec<_>>()
    );
    assert_eq!(
        (ranks[0].tables, ranks[1].tables),
        (STEPS, 0),
        "the root alone writes"
    );
    let whole = single.state_bytes;
    let per_rank: Vec<usize> = ranks.iter().map(|r| r.state_bytes).collect();
    if zero1 {
        assert_eq!(per_rank.iter().sum::<usize>(), whole, "{per_rank:?}");
        assert!(per_rank.iter().all(|&b| b < whole), "{per_rank:?}");
    } else {
        assert_eq!(per_rank, vec![whole; 2]);
    }
}

#[test]
fn two_ranks_take_the_one_rank_steps() {
    check(false);
}

#[test]
fn zero1_on_two_ranks_takes_the_same_steps() {
    check(true);
}

#[test]
fn one_rank_leaves_the_canonical_config_as_it_was() {
    let default = serde_json::to_value(config()).unwrap();
    assert!(default.get("data_parallel").is_none(), "{default}");
    let with = |dp: serde_json::Value| {
        let mut v = default.clone();
        v["data_parallel"] = dp;
        serde_json::from_value::<GrpoConfig>(v)
    };
    let explicit = with(json!({"ranks": 1, "zero": 0})).unwrap();
    assert_eq!(serde_json::to_value(&explicit).unwrap(), default);
    let two = with(json!({"ranks": 2, "zero": 1})).unwrap();
    assert_eq!(
        serde_json::to_value(&two).unwrap()["data_parallel"],
        json!({"backend": "mpi", "ranks": 2, "zero": 1})
    );
    let bad = with(json!({"zero": 2})).unwrap();
    assert!(bad.check().unwrap_err().contains("data_parallel.zero"));
    let unknown = with(json!({"rank": 2}));
    assert!(unknown.unwrap_err().to_string().contains("rank"));
}
