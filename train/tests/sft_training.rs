//! SFT on the tiny preset: the sequence format, gradient reachability of the SFT loss,
//! overfitting a fixed batch, loss weights, bitwise resume, and the written model
//! folder loading back.

mod janus_support;

use candle_core::{DType, Device, IndexOp, Tensor};
use schemas::AugmentedPrompts;
use schemas::sft_sample::SftSample;
use std::path::{Path, PathBuf};
use train::core::batch::{Batch, Kind, Weights};
use train::core::harness::Trainer as _;
use train::core::optim::{MomentFormat, OptimizerOptions};
use train::core::params::Params;
use train::janus::load::load;
use train::janus::text::TextTokenizer;
use train::janus::{JanusConfig, Ops, Padding};
use train::sft::data::{Builder, Example};
use train::sft::loss::loss;
use train::sft::trainer::examples;
use train::sft::{SftConfig, Trainer, Unconditional};

const TEXT_VOCAB: usize = 320;
const IMAGE_VOCAB: usize = 64;
const CODES: usize = 12;

fn fixture_tokenizer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/janus/tokenizer.json")
}

fn text() -> TextTokenizer {
    TextTokenizer::from_file(&fixture_tokenizer()).unwrap()
}

fn config() -> JanusConfig {
    JanusConfig::tiny(TEXT_VOCAB, IMAGE_VOCAB)
}

/// A random tiny model folder.
fn model_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let params = Params::random(&config(), &Device::Cpu).unwrap();
    params
        .save(&dir.path().join("model.safetensors"), DType::F32, None)
        .unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&config().to_json()).unwrap(),
    )
    .unwrap();
    std::fs::copy(fixture_tokenizer(), dir.path().join("tokenizer.json")).unwrap();
    dir
}

fn sample(i: usize) -> SftSample {
    let colours = ["red", "green", "blue", "yellow"];
    let shapes = ["cube", "ball", "cone"];
    let (c, s) = (colours[i % 4], shapes[i % 3]);
    SftSample {
        id: format!("s{i}"),
        prompts: AugmentedPrompts {
            short_caption: Some(format!("a {c} {s}.")),
            paraphrases: vec![format!("one {c} {s}"), format!("a {s} that is {c}")],
            tags: vec![c.into(), s.into()],
            varied_captions: vec![],
            object_prompts: vec![format!("a {c} {s}")],
        },
        rationale: format!("A single {c} {s} sits in the middle of a plain grey background."),
        image_codes: Some(
            (0..CODES)
                .map(|j| ((i * 7 + j * 5) % IMAGE_VOCAB) as u16)
                .collect(),
        ),
        ..SftSample::default()
    }
}

fn prepared(n: usize, config: &SftConfig) -> Vec<Example> {
    let (ex, skipped) = examples((0..n).map(sample), &text(), config, IMAGE_VOCAB).unwrap();
    assert_eq!(skipped, 0);
    ex
}

fn trainer(dir: &Path, config: SftConfig, n: usize) -> Trainer {
    let params = Params::from_checkpoint(dir, &self::config(), &Device::Cpu).unwrap();
    Trainer::new(
        config.clone(),
        self::config(),
        text(),
        params,
        prepared(n, &config),
        DType::F32,
    )
    .unwrap()
}

#[test]
fn sequences_follow_the_papers_format() {
    let text = text();
    let s = text.special;
    let config = SftConfig::default();
    let ex = &prepared(1, &config)[0];
    let builder = Builder {
        text: &text,
        template: config.template(),
        rationale: true,
        unconditional: Unconditional::Masked,
    };
    let seq = builder.build(ex, "a red cube", false).unwrap();
    let head = text
        .prompt_ids("a red cube. Output a richly detailed prompt: ", false)
        .unwrap();
    let decoded = text.decode(&head).unwrap();
    assert!(
        decoded.contains("a red cube. Output a richly detailed prompt:") && !decoded.ends_with(' '),
        "{decoded:?}"
    );
    assert_eq!(seq.ids[..head.len()], head[..]);
    let r = head.len() + ex.rationale_ids.len();
    assert_eq!(seq.ids[head.len()..r], ex.rationale_ids[..]);
    assert_eq!(seq.ids[r], s.begin_of_image);
    assert_eq!(seq.ids[r + 1..r + 1 + CODES], ex.codes[..]);
    assert_eq!(seq.ids[r + 1 + CODES..], [s.end_of_image, s.eos]);
    assert_eq!(seq.is_image.iter().filter(|&&b| b).count(), CODES);
    // Labels: none over the prompt; text over the rationale, BOI, image, then text.
    assert!(seq.labels[..head.len() - 1].iter().all(Option::is_none));
    assert_eq!(seq.labels[head.len() - 1], Some(Kind::Text));
    assert_eq!(seq.labels[r - 1], Some(Kind::BeginOfImage));
    assert!(
        seq.labels[r..r + CODES]
            .iter()
            .all(|l| *l == Some(Kind::Image))
    );
    assert_eq!(
        seq.labels[r + CODES..],
        [Some(Kind::Text), Some(Kind::Text)]
    );

    // Unconditional: prompt and rationale gone (masked), or pads (attended).
    let dropped = builder.build(ex, "a red cube", true).unwrap();
    assert_eq!(dropped.ids[..2], [s.bos, s.begin_of_image]);
    assert_eq!(dropped.labels[0], Some(Kind::BeginOfImage));
    assert_eq!(dropped.ids.len(), 2 + CODES + 2);
    let pads = Builder {
        unconditional: Unconditional::Pads,
        ..builder
    }
    .build(ex, "a red cube", true)
    .unwrap();
    assert_eq!(pads.ids.len(), seq.ids.len());
    assert!(pads.ids[1..r].iter().all(|&t| t == s.pad));
    assert!(pads.labels[..r - 1].iter().all(Option::is_none));

    // Without a rationale: the user turn ends with <begin_of_image>, codes follow.
    let plain = Builder {
        text: &text,
        template: "{}.".into(),
        rationale: false,
        unconditional: Unconditional::Masked,
    };
    let ex_plain = &prepared(
        1,
        &SftConfig {
            rationale: false,
            ..SftConfig::default()
        },
    )[0];
    let p = plain.build(ex_plain, "a red cube", false).unwrap();
    let head = text.prompt_ids("a red cube.", true).unwrap();
    assert_eq!(p.ids[..head.len()], head[..]);
    assert_eq!(p.ids.len(), head.len() + CODES + 2);
    assert_eq!(p.labels[head.len() - 1], Some(Kind::Image));
}

fn batch(n: usize, weights: Weights, dropped: bool) -> Batch {
    let text = text();
    let config = SftConfig::default();
    let builder = Builder {
        text: &text,
        template: config.template(),
        rationale: true,
        unconditional: Unconditional::Masked,
    };
    let rows: Vec<_> = prepared(n, &config)
        .iter()
        .enumerate()
        .map(|(i, ex)| {
            builder
                .build(ex, &ex.candidates()[0], dropped && i == 0)
                .unwrap()
        })
        .collect();
    Batch::new(&rows, text.special.pad, weights, &Device::Cpu).unwrap()
}

const PAPER: Weights = Weights {
    text: 2.0,
    image: 1.0,
    begin_of_image: 0.0,
};

#[test]
fn every_parameter_generation_uses_gets_a_gradient_from_the_sft_loss() {
    let params = Params::random(&config(), &Device::Cpu).unwrap();
    let model = params.model(&config(), DType::F32).unwrap();
    let b = batch(3, PAPER, true);
    let grads = loss(&model, &b, 1.0).unwrap().loss.backward().unwrap();
    let missing = janus_support::without_gradient(&params, &grads);
    // 2 layers × 9 + embed, norm, lm_head + gen_embed + 2 × 2 aligner + 2 × 2 head.
    assert_eq!(params.vars.len(), 2 * 9 + 3 + 1 + 4 + 4);
    assert!(missing.is_empty(), "no gradient reaches {missing:?}");
}

#[test]
fn the_loss_is_linear_in_the_weights_and_ignores_begin_of_image_at_zero() {
    let params = Params::random(&config(), &Device::Cpu).unwrap();
    let model = params.model(&config(), DType::F32).unwrap();
    let at = |text: f32, image: f32, begin_of_image: f32| {
        let w = Weights {
            text,
            image,
            begin_of_image,
        };
        loss(&model, &batch(3, w, false), 1.0)
            .unwrap()
            .loss
            .to_scalar::<f32>()
            .unwrap()
    };
    let (t, i, b) = (at(1.0, 0.0, 0.0), at(0.0, 1.0, 0.0), at(0.0, 0.0, 1.0));
    assert!(t > 0.0 && i > 0.0 && b > 0.0, "{t} {i} {b}");
    let paper = at(2.0, 1.0, 0.0);
    assert!(
        (paper - (2.0 * t + i)).abs() < 1e-5,
        "{paper} vs {}",
        2.0 * t + i
    );
    let with_boi = at(2.0, 1.0, 3.0);
    assert!((with_boi - (paper + 3.0 * b)).abs() < 1e-5);
    // The denominator counts labels, not weights: the BOI label is counted at weight 0.
    let zero = batch(3, PAPER, false);
    let positive = batch(
        3,
        Weights {
            begin_of_image: 1.0,
            ..PAPER
        },
        false,
    );
    assert_eq!(zero.counted, positive.counted);
    assert_eq!(zero.text.positions.len() + 3, positive.text.positions.len());
    // An unconditional row computes fewer tokens than the same row conditioned.
    assert!(batch(3, PAPER, true).tokens < zero.tokens);
}

fn fixed_batch_config() -> SftConfig {
    SftConfig {
        steps: 150,
        batch_size: 4,
        lr: 3e-3,
        warmup_ratio: 0.0,
        min_lr_ratio: 1.0,
        weight_decay: 0.0,
        cfg_dropout: 0.0,
        clip_norm: 1.0,
        ..SftConfig::default()
    }
}

#[test]
fn a_fixed_batch_is_overfit_to_near_zero_loss() {
    let dir = model_folder();
    // Four samples, each with a single prompt: every step sees the same batch.
    let config = fixed_batch_config();
    let params = Params::from_checkpoint(dir.path(), &self::config(), &Device::Cpu).unwrap();
    let mut rows: Vec<SftSample> = (0..4).map(sample).collect();
    for r in &mut rows {
        let only = r.prompts.short_caption.clone();
        r.prompts = AugmentedPrompts {
            short_caption: only,
            ..AugmentedPrompts::default()
        };
    }
    let (ex, _) = examples(rows, &text(), &config, IMAGE_VOCAB).unwrap();
    let mut t = Trainer::new(
        config.clone(),
        self::config(),
        text(),
        params,
        ex,
        DType::F32,
    )
    .unwrap();
    let first = t.train_step().unwrap();
    let mut last = first.clone();
    for _ in 1..config.steps {
        last = t.train_step().unwrap();
    }
    assert!(first.loss > 3.0, "starts near chance: {first:?}");
    assert!(last.loss < 0.05, "after {} steps: {last:?}", config.steps);
    assert!(last.text_loss.unwrap() < 0.05 && last.image_loss.unwrap() < 0.05);
}

/// Bitwise on one thread: with several, candle's CPU matmul (the `gemm` crate) does not
/// give the same bits run to run, so neither would two uninterrupted runs.
#[test]
fn a_resumed_run_gives_bitwise_the_same_losses() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    // Checkpoints inside a length group (drawn again on restore) and at its end.
    for (length_group, at) in [(4, 3), (16, 3), (2, 4)] {
        pool.install(|| resume_matches(length_group, at, MomentFormat::F32));
    }
}

/// BF16 moments (stochastic rounding keyed by the step) and 8-bit ones through the
/// checkpoint's formats, bitwise as well.
#[test]
fn a_resumed_run_with_narrow_moments_gives_bitwise_the_same_losses() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for moments in [MomentFormat::Bf16, MomentFormat::Int8] {
        pool.install(|| resume_matches(4, 3, moments));
    }
}

fn resume_matches(length_group: usize, at: usize, moments: MomentFormat) {
    let dir = model_folder();
    let config = SftConfig {
        length_group,
        steps: 6,
        batch_size: 2,
        grad_accum: 2,
        lr: 1e-3,
        warmup_ratio: 0.3,
        cfg_dropout: 0.3,
        optimizer: OptimizerOptions { moments },
        ..SftConfig::default()
    };
    let mut straight = trainer(dir.path(), config.clone(), 5);
    let losses: Vec<f64> = (0..6)
        .map(|_| straight.train_step().unwrap().loss)
        .collect();

    let mut first = trainer(dir.path(), config.clone(), 5);
    for _ in 0..at {
        first.train_step().unwrap();
    }
    let checkpoint = tempfile::tempdir().unwrap();
    first
        .stepper()
        .save_checkpoint(checkpoint.path(), &first.progress())
        .unwrap();
    drop(first);
    if moments != MomentFormat::F32 {
        let other = SftConfig {
            optimizer: OptimizerOptions::default(),
            ..config.clone()
        };
        let mut f32_run = trainer(dir.path(), other, 5);
        let err = f32_run
            .stepper_mut()
            .restore::<serde_json::Value>(checkpoint.path())
            .expect_err("other moments are refused")
            .to_string();
        assert!(err.contains("optimizer.moments"), "{err}");
    }
    let mut resumed = trainer(dir.path(), config, 5);
    let progress = resumed.stepper_mut().restore(checkpoint.path()).unwrap();
    resumed.resume(progress).unwrap();
    assert_eq!(resumed.step(), at);
    let after: Vec<f64> = (at..6)
        .map(|_| resumed.train_step().unwrap().loss)
        .collect();
    assert_eq!(after, losses[at..], "losses after resuming at step {at}");
    assert_eq!(
        resumed.metrics().iter().map(|m| m.loss).collect::<Vec<_>>(),
        losses
    );
    for ((name, a), (_, b)) in straight
        .params()
        .tensors()
        .iter()
        .zip(resumed.params().tensors())
    {
        let diff = (a - &b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(
            diff, 0.0,
            "{name} (length group {length_group}, resumed at {at}, {moments:?} moments)"
        );
    }
}

#[test]
fn the_written_model_loads_back_with_the_same_logits() {
    let dir = model_folder();
    let mut t = trainer(
        dir.path(),
        SftConfig {
            steps: 2,
            batch_size: 2,
            lr: 1e-3,
            ..SftConfig::default()
        },
        4,
    );
    t.train_step().unwrap();
    t.train_step().unwrap();
    let out = tempfile::tempdir().unwrap();
    t.save_model(out.path(), &fixture_tokenizer(), None)
        .unwrap();
    let loaded = load(out.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.model.config(), &config());
    let ours = t.params().model(&config(), DType::F32).unwrap();
    let ids = Tensor::new(&[[300u32, 5, 9, 306, 3, 4, 307]], &Device::Cpu).unwrap();
    let image = Tensor::new(&[[0u8, 0, 0, 0, 1, 1, 0]], &Device::Cpu).unwrap();
    let padding = Padding::none(1, 7);
    let logits = |m: &train::janus::Janus| {
        let h = m
            .forward(
                &m.embed_mixed(&ids, &image).unwrap(),
                &padding,
                None,
                Ops::Fused,
            )
            .unwrap();
        let h = h.i((.., 3..6, ..)).unwrap();
        (m.text_logits(&h).unwrap(), m.image_logits(&h).unwrap())
    };
    let (a_text, a_image) = logits(&ours);
    let (b_text, b_image) = logits(&loaded.model);
    let max = |x: Tensor, y: Tensor| max_abs_diff(&x, &y);
    assert_eq!(max(a_text, b_text), 0.0);
    assert_eq!(max(a_image, b_image), 0.0);
    // And the weights moved from the starting model.
    let start = Params::from_checkpoint(dir.path(), &config(), &Device::Cpu).unwrap();
    let moved = start
        .tensors()
        .iter()
        .zip(t.params().tensors())
        .filter(|((_, a), (_, b))| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        })
        .count();
    assert_eq!(moved, start.vars.len());
}

#[test]
fn bad_samples_are_named() {
    let mut s = sample(0);
    s.image_codes = None;
    let err = examples([s], &text(), &SftConfig::default(), IMAGE_VOCAB)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("`s0`") && err.contains("no image codes"),
        "{err}"
    );
    let mut s = sample(1);
    s.image_codes = Some(vec![IMAGE_VOCAB as u16]);
    let err = examples([s], &text(), &SftConfig::default(), IMAGE_VOCAB)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("`s1`") && err.contains("outside"), "{err}");
    let short = SftConfig {
        max_length: 20,
        ..SftConfig::default()
    };
    let (kept, skipped) = examples((0..3).map(sample), &text(), &short, IMAGE_VOCAB).unwrap();
    assert_eq!((kept.len(), skipped), (0, 3));
}

fn parity_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/janus")
}

/// Text and image logits at every position of the golden mixed sequence.
fn golden_logits(model: &train::janus::Janus) -> (Tensor, Tensor) {
    let golden =
        candle_core::safetensors::load(parity_fixtures().join("golden.safetensors"), &Device::Cpu)
            .unwrap();
    let ids = golden["mixed.ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let image = golden["mixed.image_mask"].unsqueeze(0).unwrap();
    let t = ids.dim(1).unwrap();
    let embeds = model.embed_mixed(&ids, &image).unwrap();
    let h = model
        .forward(&embeds, &Padding::none(1, t), None, Ops::Composite)
        .unwrap()
        .squeeze(0)
        .unwrap();
    (
        model.text_logits(&h).unwrap(),
        model.image_logits(&h).unwrap(),
    )
}

/// The parity model after a few SFT steps, written where the Python reference can load
/// it (`REASONGEN_SFT_PARITY_OUT`, else a temporary folder) with our logits beside it:
/// `scripts/janus_parity.py --check-checkpoint DIR` compares them.
#[test]
fn sft_from_the_parity_model_writes_what_the_python_reference_reads() {
    let original = parity_fixtures().join("original");
    let model_config = JanusConfig::from_file(&original.join("config.json")).unwrap();
    let params = Params::from_checkpoint(&original, &model_config, &Device::Cpu).unwrap();
    let config = SftConfig {
        steps: 3,
        batch_size: 2,
        lr: 1e-2,
        warmup_ratio: 0.0,
        ..SftConfig::default()
    };
    let ex = prepared(4, &config);
    let vq = Params::vq_from_checkpoint(&original, &model_config, &Device::Cpu)
        .unwrap()
        .expect("the parity model has its VQ-16");
    let mut t = Trainer::new(config, model_config, text(), params, ex, DType::F32).unwrap();
    for _ in 0..3 {
        t.train_step().unwrap();
    }
    let temp = tempfile::tempdir().unwrap();
    let out = std::env::var_os("REASONGEN_SFT_PARITY_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    t.save_model(&out, &original.join("tokenizer.json"), Some(&vq))
        .unwrap();
    let loaded = load(&out, &Device::Cpu).unwrap();
    // The untrained VQ-16 comes along unchanged: the folder draws on its own.
    let written = Params::vq_from_checkpoint(&out, loaded.model.config(), &Device::Cpu)
        .unwrap()
        .expect("the written model keeps its VQ-16");
    let (a, b) = (vq.tensors(), written.tensors());
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert_eq!(max_abs_diff(ta, tb), 0.0, "{na}");
    }
    let (text_logits, image_logits) = golden_logits(&loaded.model);
    let ours = t.params().model(loaded.model.config(), DType::F32).unwrap();
    let (a, b) = golden_logits(&ours);
    let max = max_abs_diff;
    assert_eq!(max(&a, &text_logits), 0.0);
    assert_eq!(max(&b, &image_logits), 0.0);
    candle_core::safetensors::save(
        &[("text_logits", text_logits), ("image_logits", image_logits)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        out.join("candle_logits.safetensors"),
    )
    .unwrap();
}

/// A checkpoint the test above wrote, loaded by `scripts/janus_parity.py
/// --check-checkpoint` into transformers: its logits there are ours.
#[test]
fn a_checkpoint_we_wrote_gives_the_python_references_logits() {
    let dir = parity_fixtures().join("sft_written");
    let loaded = load(&dir, &Device::Cpu).unwrap();
    let reference =
        candle_core::safetensors::load(dir.join("python_logits.safetensors"), &Device::Cpu)
            .unwrap();
    let (text_logits, image_logits) = golden_logits(&loaded.model);
    for (name, ours) in [("text_logits", text_logits), ("image_logits", image_logits)] {
        let diff = (&ours - &reference[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff <= 1e-4, "{name}: {diff}");
    }
}

/// The largest absolute difference between two tensors of one shape.
fn max_abs_diff(x: &Tensor, y: &Tensor) -> f32 {
    (x - y)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// LoRA with activation checkpointing through the SFT trainer: only the adapters are
/// parameters, the losses fall, a run resumed from its checkpoint gives bitwise the
/// uninterrupted run's losses, and the written model folder loads (merged weights,
/// original names) with the adapters beside it.
#[test]
fn a_lora_run_with_checkpointing_resumes_bitwise_and_writes_a_loadable_model() {
    use train::janus::lora::{LoraConfig, MODULES};
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let dir = model_folder();
        let config = SftConfig {
            steps: 4,
            batch_size: 2,
            lr: 1e-2,
            warmup_ratio: 0.0,
            activation_checkpointing: true,
            lora: Some(LoraConfig {
                rank: 4,
                alpha: 8.0,
                target_modules: MODULES.iter().map(|m| m.to_string()).collect(),
                seed: 3,
            }),
            ..SftConfig::default()
        };
        let mut straight = trainer(dir.path(), config.clone(), 4);
        assert!(straight.params().names.iter().all(|n| n.contains(".lora_")));
        let losses: Vec<f64> = (0..4)
            .map(|_| straight.train_step().unwrap().loss)
            .collect();
        assert!(losses[3] < losses[0], "LoRA losses {losses:?}");

        let mut first = trainer(dir.path(), config.clone(), 4);
        for _ in 0..2 {
            first.train_step().unwrap();
        }
        let checkpoint = tempfile::tempdir().unwrap();
        first
            .stepper()
            .save_checkpoint(checkpoint.path(), &first.progress())
            .unwrap();
        drop(first);
        let mut resumed = trainer(dir.path(), config, 4);
        let progress = resumed.stepper_mut().restore(checkpoint.path()).unwrap();
        resumed.resume(progress).unwrap();
        let after: Vec<f64> = (2..4).map(|_| resumed.train_step().unwrap().loss).collect();
        assert_eq!(after, losses[2..], "losses after resuming");

        let out = tempfile::tempdir().unwrap();
        resumed
            .stepper()
            .save_model(out.path(), &dir.path().join("tokenizer.json"), None)
            .unwrap();
        load(out.path(), &Device::Cpu).unwrap();
        assert!(out.path().join("adapter/adapter_config.json").is_file());
    });
}
