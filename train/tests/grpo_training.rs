//! GRPO's loss and updates on a tiny random model: rollouts become sequences with
//! every response token labelled; the rollout policy's log-probabilities equal the
//! first update's (ratio ≡ 1, nothing clipped, KL 0); every parameter receives a
//! gradient from the loss, entropy term included; and one update on a group where one
//! trajectory won raises its log-probability and lowers the others'.

mod janus_support;

use candle_core::{DType, Device};
use std::path::{Path, PathBuf};
use train::core::batch::{Batch, Kind, Weights};
use train::core::optim::AdamWConfig;
use train::core::params::Params;
use train::core::stepper::Stepper;
use train::grpo::advantage::advantages;
use train::grpo::loss::{MicroBatch, Settings, label_log_probs, loss};
use train::grpo::rollout::{RolloutOptions, Trajectory, sample, seed};
use train::janus::JanusConfig;
use train::janus::generate::Unconditional;
use train::janus::text::TextTokenizer;

const TEXT_VOCAB: usize = 320;
const IMAGE_VOCAB: usize = 64;
const CODES: usize = 12;

fn text() -> TextTokenizer {
    let path: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/janus/tokenizer.json");
    TextTokenizer::from_file(&path).unwrap()
}

fn config() -> JanusConfig {
    JanusConfig::tiny(TEXT_VOCAB, IMAGE_VOCAB)
}

fn options(rationale: bool) -> RolloutOptions {
    RolloutOptions {
        template: "A photo of {}. Output a richly detailed prompt: ".into(),
        max_rationale_tokens: rationale.then_some(12),
        cfg_weight: 1.0,
        unconditional: Unconditional::Masked,
        image_tokens: CODES,
        batch_size: 3,
    }
}

const ALL: Weights = Weights {
    text: 1.0,
    image: 1.0,
    begin_of_image: 1.0,
};

/// A group of `n` trajectories of one prompt from a random model.
fn group(params: &Params, n: usize) -> Vec<Trajectory> {
    let model = params.model(&config(), DType::F32).unwrap();
    let rows: Vec<(&str, u64)> = (0..n)
        .map(|s| ("a red cube", seed(7, 0, 0, "p", s)))
        .collect();
    sample(&model, &text(), &rows, &options(true)).unwrap()
}

fn micro_batch(params: &Params, trajectories: &[Trajectory], rewards: &[f64]) -> MicroBatch {
    let text = text();
    let rows: Vec<_> = trajectories
        .iter()
        .map(|t| t.sequence(&text, true))
        .collect();
    let batch = Batch::new(&rows, text.special.pad, ALL, &Device::Cpu).unwrap();
    let model = params.model(&config(), DType::F32).unwrap();
    let old = label_log_probs(&model, &batch).unwrap();
    let rewards: Vec<Option<f64>> = rewards.iter().map(|&r| Some(r)).collect();
    MicroBatch {
        batch,
        advantages: advantages(&rewards)
            .into_iter()
            .map(|a| a.unwrap() as f32)
            .collect(),
        old,
        reference: None,
    }
}

/// Each row's summed log-probability under `params`.
fn sums(params: &Params, mb: &MicroBatch) -> Vec<f64> {
    let model = params.model(&config(), DType::F32).unwrap();
    let values = label_log_probs(&model, &mb.batch).unwrap();
    let rows = mb.batch.positions / mb.batch.width;
    let mut out = vec![0.0; rows];
    for (targets, v) in [
        (&mb.batch.text, &values.text),
        (&mb.batch.image, &values.image),
    ] {
        for (p, x) in targets.positions.iter().zip(v) {
            out[*p as usize / mb.batch.width] += f64::from(*x);
        }
    }
    out
}

const SETTINGS: Settings = Settings {
    clip: 0.2,
    kl_coef: 0.0,
};

#[test]
fn rollouts_are_seeded_and_every_response_token_is_labelled() {
    let params = Params::random(&config(), &Device::Cpu).unwrap();
    let a = group(&params, 3);
    assert_eq!(
        a,
        group(&params, 3),
        "the same seeds draw the same trajectories"
    );
    let text = text();
    for t in &a {
        assert_eq!(t.codes.len(), CODES);
        assert!(t.rationale_ids.len() <= 11 && (t.capped == (t.rationale_ids.len() == 11)));
        let s = t.sequence(&text, true);
        let first = t.prompt_ids.len() - 1;
        assert!(
            s.labels[..first].iter().all(Option::is_none),
            "the prompt is not"
        );
        let response = &s.labels[first..];
        assert_eq!(response.len(), t.rationale_ids.len() + 1 + CODES + 1);
        assert_eq!(response[t.rationale_ids.len()], Some(Kind::BeginOfImage));
        assert_eq!(
            response.iter().filter(|l| **l == Some(Kind::Image)).count(),
            CODES
        );
        assert_eq!(response.last(), Some(&Some(Kind::Text)), "EOS");
        assert_eq!(s.ids.last(), Some(&text.special.eos));
    }
    // The plain mode: the prompt ends with <begin_of_image>; codes and EOS follow.
    let model = params.model(&config(), DType::F32).unwrap();
    let plain = sample(&model, &text, &[("a red cube", 1)], &options(false)).unwrap();
    let s = plain[0].sequence(&text, false);
    assert_eq!(
        plain[0].prompt_ids.last(),
        Some(&text.special.begin_of_image)
    );
    assert_eq!(s.labels.iter().flatten().count(), CODES + 1);
}

#[test]
fn the_first_update_sees_the_rollout_policy_itself() {
    let params = Params::random(&config(), &Device::Cpu).unwrap();
    let trajectories = group(&params, 4);
    let mb = micro_batch(&params, &trajectories, &[1.0, 0.0, 0.0, 1.0]);
    let model = params.model(&config(), DType::F32).unwrap();
    let parts = loss(&model, &mb, SETTINGS, (0.0, 0.0), 1.0).unwrap();
    assert_eq!(parts.clipped, 0, "ratio ≡ 1: nothing clipped");
    assert!(parts.kl_sum.abs() < 1e-4, "KL {}", parts.kl_sum);
    assert_eq!(
        parts.tokens,
        mb.batch.text.positions.len() + mb.batch.image.positions.len()
    );
    // Advantages sum to zero over the group: the surrogate at ratio 1 is −mean(A) per
    // token, near zero but for the lengths' differences.
    assert!(parts.entropy_text.unwrap() > 0.0 && parts.entropy_image.unwrap() > 0.0);
    assert!(parts.entropy_image.unwrap() <= (IMAGE_VOCAB as f64).ln() + 1e-4);
}

#[test]
fn every_parameter_gets_a_gradient_from_the_grpo_loss() {
    let params = Params::random(&config(), &Device::Cpu).unwrap();
    let trajectories = group(&params, 4);
    let mb = micro_batch(&params, &trajectories, &[1.0, 0.0, 0.0, 0.0]);
    let model = params.model(&config(), DType::F32).unwrap();
    let parts = loss(&model, &mb, SETTINGS, (5e-3, -5e-3), 1.0).unwrap();
    let grads = parts.loss.backward().unwrap();
    let missing = janus_support::without_gradient(&params, &grads);
    assert!(missing.is_empty(), "no gradient reaches {missing:?}");
}

#[test]
fn the_winner_rises_and_the_others_fall() {
    let params = Params::random(&config(), &Device::Cpu).unwrap();
    let trajectories = group(&params, 4);
    let mb = micro_batch(&params, &trajectories, &[0.0, 1.0, 0.0, 0.0]);
    let before = sums(&params, &mb);
    let adamw = AdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        moments: Default::default(),
        seed: 0,
    };
    let copy = Params::from_tensors(
        &params.names,
        &params
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.copy().unwrap()))
            .collect(),
    )
    .unwrap();
    let mut stepper = Stepper::new(config(), copy, adamw, DType::F32).unwrap();
    stepper
        .update(std::slice::from_ref(&mb), 1e-3, 1.0, |model, mb| {
            Ok(loss(model, mb, SETTINGS, (0.0, 0.0), 1.0)?.loss)
        })
        .unwrap();
    let after = sums(stepper.params(), &mb);
    assert!(
        after[1] > before[1],
        "the winner: {} → {}",
        before[1],
        after[1]
    );
    for i in [0, 2, 3] {
        assert!(
            after[i] < before[i],
            "loser {i}: {} → {}",
            before[i],
            after[i]
        );
    }
}

mod judges {
    //! The VLM reward over HTTP through the shapes VLM gives what the exact judge gives
    //! in-process, on 120 images of the shapes world (clean and degraded renders, each
    //! for its own prompt or for another prompt of its task).

    use datasets::shapes::perturb::Degradation;
    use datasets::shapes::{HeldOut, SceneGenerator, TaskCounts, prompt_set, render};
    use pipeline::console::{Console, ConsoleMode};
    use pipeline::events::EventSink;
    use pipeline::executor::{Capacity, Outcome, RunOptions};
    use pipeline::recipe::{Recipe, validate};
    use pipeline::{
        ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Registry, Stage, StageContext,
        StageError, Store,
    };
    use serde::{Deserialize, Serialize};
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;
    use train::grpo::reward::{Item, RewardConfig, Rewarder};

    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    struct Config {}

    /// A node that scores the images both ways and reports the rewards.
    struct Agreement;

    fn items() -> Vec<Item> {
        let prompts = prompt_set(5, &TaskCounts::uniform(12), &HeldOut::default());
        let mut scenes = SceneGenerator::new(3);
        let mut out = Vec::new();
        for (i, p) in prompts.iter().enumerate().take(60) {
            let scene = scenes.for_metadata(&p.metadata).unwrap();
            let clean = render(&scene, 64);
            let degraded = Degradation {
                blur_sigma: 0.8,
                noise_sigma: 0.03,
                jpeg_quality: None,
                seed: i as u64,
            }
            .apply(&clean)
            .unwrap();
            // The same image judged against its own prompt and the next one of its task.
            let other = prompts
                .iter()
                .skip(i + 1)
                .find(|q| {
                    q.metadata.tag == p.metadata.tag && q.metadata.prompt != p.metadata.prompt
                })
                .unwrap_or(p);
            for (image, prompt) in [(clean, p), (degraded, other)] {
                out.push(Item {
                    prompt: prompt.metadata.prompt.clone(),
                    record: Some(prompt.metadata.clone()),
                    image,
                });
            }
        }
        out
    }

    impl Stage for Agreement {
        type Config = Config;
        const KIND: &'static str = "test.judges";
        const VERSION: u32 = 1;
        const DOC: &'static str = "both judges on the same images";
        const INPUTS: &'static [InputSpec] = &[];
        const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Report));

        async fn run(&self, _: Config, ctx: StageContext) -> Result<Output, StageError> {
            let handle = tokio::runtime::Handle::current();
            let ctx = Arc::new(ctx);
            tokio::task::spawn_blocking(move || {
                let items = Arc::new(items());
                let vlm: RewardConfig = serde_json::from_value(serde_json::json!({
                    "vlm": {"endpoint": {"base_url": "builtin:shapes-vlm", "model": "shapes-vlm"}}
                }))
                .unwrap();
                let mut rewards = Vec::new();
                for config in [RewardConfig::Shapes, vlm] {
                    let r = Rewarder::open(&config, &ctx, items.len() as u64, &handle)?;
                    let scored: Vec<f64> = r
                        .submit(items.clone())
                        .wait()?
                        .into_iter()
                        .map(|o| o.map(|s| s.reward).map_err(StageError::msg))
                        .collect::<Result<_, _>>()?;
                    rewards.push(scored);
                }
                Ok(Output {
                    meta: serde_json::json!({"shapes": rewards[0], "vlm": rewards[1]}),
                    ..Output::default()
                })
            })
            .await
            .unwrap()
        }
    }

    #[test]
    fn the_http_judge_agrees_with_the_exact_judge() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let mut registry = Registry::new();
        registry.register(Agreement);
        let recipe = "[recipe]\nname = \"judges\"\n[nodes.judges]\nkind = \"test.judges\"\n";
        let graph = validate(
            Recipe::parse(&dir.path().join("r.toml"), recipe.into()).unwrap(),
            &registry,
        )
        .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let summary = rt
            .block_on(pipeline::executor::run(
                Arc::new(graph),
                store.clone(),
                pipeline::executor::new_run_id(),
                RunOptions {
                    capacity: Capacity {
                        threads: 2,
                        gpus: 0,
                        llm_slots: 256,
                    },
                    targets: vec![],
                    force: Default::default(),
                    budget_usd: None,
                },
                EventSink::to_file(&dir.path().join("events.jsonl"), vec![]).unwrap(),
                Console::new(ConsoleMode::Quiet),
                CancellationToken::new(),
            ))
            .unwrap();
        let digest = match &summary.outcomes[0].1 {
            Outcome::Ran { digest, .. } => *digest,
            other => panic!("{other:?}"),
        };
        let meta = store.manifest(&digest).unwrap().content.meta;
        let (shapes, vlm) = (
            meta["shapes"].as_array().unwrap(),
            meta["vlm"].as_array().unwrap(),
        );
        assert_eq!(shapes.len(), 120);
        assert_eq!(shapes, vlm, "the same reward for every image");
        let ones = shapes.iter().filter(|r| r.as_f64() == Some(1.0)).count();
        assert!((50..=70).contains(&ones), "{ones} of 120 correct");
    }
}
