//! Data-parallel SFT on the tiny preset with thread ranks: N ranks give the one-rank
//! update of the same global step (N = 2 and 3, with and without ZeRO-1), ZeRO-1 keeps
//! 1/N of the optimiser state per rank, and a ZeRO-1 checkpoint (moments gathered
//! whole) resumes to the uninterrupted run; the `data_parallel` setting at one rank
//! leaves the canonical config (so run keys) as it was. The multi-process run under `mpirun` is
//! the root test `tests/data_parallel_mpi.rs` (through `reasongen bench dp`).

use candle_core::{DType, Device, Tensor};
use schemas::AugmentedPrompts;
use schemas::sft_sample::SftSample;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use train::core::harness::Trainer as _;
use train::core::params::Params;
use train::dist::Replica;
use train::dist::collective::Collective;
use train::dist::threads::group;
use train::janus::JanusConfig;
use train::janus::text::TextTokenizer;
use train::sft::trainer::examples;
use train::sft::{SftConfig, Trainer};

const TEXT_VOCAB: usize = 320;
const IMAGE_VOCAB: usize = 64;
const CODES: usize = 12;
const STEPS: usize = 3;

fn text() -> TextTokenizer {
    let path: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/janus/tokenizer.json");
    TextTokenizer::from_file(&path).unwrap()
}

fn model_config() -> JanusConfig {
    JanusConfig::tiny(TEXT_VOCAB, IMAGE_VOCAB)
}

fn sample(i: usize) -> SftSample {
    let colours = ["red", "green", "blue", "yellow", "black"];
    let shapes = ["cube", "ball", "cone"];
    let (c, s) = (colours[i % 5], shapes[i % 3]);
    SftSample {
        id: format!("s{i}"),
        prompts: AugmentedPrompts {
            short_caption: Some(format!("a {c} {s}.")),
            paraphrases: vec![format!("one {c} {s} on the floor")],
            ..AugmentedPrompts::default()
        },
        rationale: format!(
            "A {c} {s} in the middle of a plain grey background, lit from the left."
        ),
        image_codes: Some(
            (0..CODES)
                .map(|j| ((i * 7 + j * 5) % IMAGE_VOCAB) as u16)
                .collect(),
        ),
        ..SftSample::default()
    }
}

/// Six sequences a step in three micro-batches of two.
fn sft_config() -> SftConfig {
    SftConfig {
        steps: STEPS,
        batch_size: 2,
        grad_accum: 3,
        length_group: 1,
        lr: 1e-3,
        warmup_ratio: 0.0,
        clip_norm: 1.0,
        checkpoint_every: 0,
        ..SftConfig::default()
    }
}

/// The initial weights, as named tensors every rank copies.
fn initial() -> (Vec<String>, HashMap<String, Tensor>) {
    let params = Params::random(&model_config(), &Device::Cpu).unwrap();
    let names = params.names.clone();
    (names, params.tensors().into_iter().collect())
}

fn trainer(init: &(Vec<String>, HashMap<String, Tensor>), replica: Option<Replica>) -> Trainer {
    let config = sft_config();
    let (ex, skipped) = examples((0..10).map(sample), &text(), &config, IMAGE_VOCAB).unwrap();
    assert_eq!(skipped, 0);
    let params = Params::from_tensors(&init.0, &init.1).unwrap();
    Trainer::replicated(
        config,
        model_config(),
        text(),
        params,
        ex,
        DType::F32,
        replica,
    )
    .unwrap()
}

fn weights(t: &Trainer) -> Vec<Vec<f32>> {
    t.params()
        .vars
        .iter()
        .map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

/// Each rank's trainer after `steps` steps, the ranks as threads (rank order).
fn on_ranks<T: Send>(world: usize, f: impl Fn(Arc<dyn Collective>) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = group(world)
            .into_iter()
            .map(|rank| {
                let f = &f;
                s.spawn(move || f(Arc::new(rank)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

struct Run {
    weights: Vec<Vec<f32>>,
    losses: Vec<f64>,
    /// Before clipping: a gradient scaled wrongly on every rank shows here (AdamW's
    /// update hides a common scale).
    grad_norms: Vec<f64>,
    state_bytes: usize,
}

fn run(t: &mut Trainer) -> Run {
    let metrics: Vec<_> = (0..STEPS).map(|_| t.train_step().unwrap()).collect();
    Run {
        weights: weights(t),
        losses: metrics.iter().map(|m| m.loss).collect(),
        grad_norms: metrics.iter().map(|m| m.grad_norm).collect(),
        state_bytes: t.stepper().memory().optimizer_state_bytes,
    }
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// N ranks (ZeRO stage `zero1`) against one, after STEPS steps.
fn check_world(world: usize, zero1: bool) {
    let init = initial();
    let start: Vec<Vec<f32>> = weights(&trainer(&init, None));
    let single = run(&mut trainer(&init, None));
    let moved = max_difference(&start, &single.weights);
    assert!(moved > 1e-3, "training moves the weights: {moved}");
    let ranks = on_ranks(world, |comm| {
        run(&mut trainer(&init, Some(Replica { comm, zero1 })))
    });
    for (rank, r) in ranks.iter().enumerate() {
        let diff = max_difference(&single.weights, &r.weights);
        assert!(
            diff < 2e-5,
            "world {world}, zero1 {zero1}, rank {rank}: weights differ by {diff}"
        );
        let pairs = single.losses.iter().zip(&r.losses);
        for (a, b) in pairs.chain(single.grad_norms.iter().zip(&r.grad_norms)) {
            assert!((a - b).abs() < 1e-4 * a.abs(), "loss or norm {a} vs {b}");
        }
    }
    let total: usize = start.iter().map(Vec::len).sum();
    let whole = single.state_bytes;
    assert_eq!(whole, total * 8, "f32 m and v");
    if zero1 {
        let per_rank: Vec<usize> = ranks.iter().map(|r| r.state_bytes).collect();
        let most = *per_rank.iter().max().unwrap();
        assert_eq!(most, total.div_ceil(world) * 8, "{per_rank:?}");
        assert_eq!(per_rank.iter().sum::<usize>(), whole, "{per_rank:?}");
        println!("ZeRO-1, world {world}: optimizer state per rank {per_rank:?} bytes of {whole}");
    } else {
        assert!(ranks.iter().all(|r| r.state_bytes == whole));
    }
}

#[test]
fn two_ranks_take_the_one_rank_step() {
    check_world(2, false);
}

#[test]
fn three_ranks_take_the_one_rank_step() {
    check_world(3, false);
}

#[test]
fn zero1_takes_the_same_step_with_a_third_of_the_state_per_rank() {
    check_world(3, true);
}

#[test]
fn zero1_on_two_ranks_takes_the_same_step() {
    check_world(2, true);
}

#[test]
fn a_zero1_checkpoint_resumes_to_the_uninterrupted_run() {
    let init = initial();
    let single = run(&mut trainer(&init, None));
    let dir = tempfile::tempdir().unwrap();
    let resumed = on_ranks(2, |comm| {
        let replica = Replica { comm, zero1: true };
        let mut first = trainer(&init, Some(replica.clone()));
        first.train_step().unwrap();
        let progress = first.progress();
        if first.stepper().is_root() {
            first
                .stepper()
                .save_checkpoint(dir.path(), &progress)
                .unwrap();
        } else {
            first.stepper().whole_optimizer().unwrap();
        }
        replica.comm.barrier().unwrap();
        let mut second = trainer(&init, Some(replica));
        let progress = second.stepper_mut().restore(dir.path()).unwrap();
        second.resume(progress).unwrap();
        while second.step() < STEPS {
            second.train_step().unwrap();
        }
        weights(&second)
    });
    for w in &resumed {
        let diff = max_difference(&single.weights, w);
        assert!(diff < 2e-5, "resumed weights differ by {diff}");
    }
}

#[test]
fn one_rank_leaves_the_canonical_config_as_it_was() {
    let default = serde_json::to_value(SftConfig::default()).unwrap();
    assert!(default.get("data_parallel").is_none(), "{default}");
    let explicit: SftConfig =
        serde_json::from_value(json!({"data_parallel": {"ranks": 1, "zero": 0}})).unwrap();
    assert_eq!(serde_json::to_value(&explicit).unwrap(), default);
    let two: SftConfig =
        serde_json::from_value(json!({"data_parallel": {"ranks": 2, "zero": 1}})).unwrap();
    assert_eq!(
        serde_json::to_value(&two).unwrap()["data_parallel"],
        json!({"backend": "mpi", "ranks": 2, "zero": 1})
    );
    let bad: SftConfig = serde_json::from_value(json!({"data_parallel": {"zero": 2}})).unwrap();
    assert!(bad.check().unwrap_err().contains("data_parallel.zero"));
    let unknown = serde_json::from_value::<SftConfig>(json!({"data_parallel": {"rank": 2}}));
    assert!(unknown.unwrap_err().to_string().contains("rank"));
}
