//! The SFT step benchmark: forward, backward and AdamW of the Janus-Pro generation
//! path on synthetic sequences (text then image codes, every label in the loss), with
//! FP32 master weights (BF16 compute on a GPU). Prints step time, tokens/s and, on a
//! GPU, model FLOPs utilisation. `scripts/sft_gpu_bench.py` runs the same step in
//! PyTorch (transformers' Janus) and this command, and prints both.
//!
//! FLOPs per step (the PaLM convention, no causal halving, also in the script):
//! 6 × (decoder matmul parameters) per token + 12 × layers × width × sequence per
//! token for attention, + 6 × the head used at each label (lm_head on text labels,
//! gen_head on image labels) + 6 × gen_aligner per image input.
//!
//! `--ops composite` runs the model on candle's differentiable primitives instead of
//! our fused ops; `--compare` runs both by turns and prints their ratio.
//!
//! `--checkpointing` and `--lora RANK` pick the memory options; the step then also
//! prints the process's peak RSS (run one option per process) and the training
//! state's bytes. The FLOPs stay full fine-tuning's count (LoRA computes no weight
//! gradients of the base, so its TFLOP/s is overstated).

use anyhow::{Result, bail};
use std::process::ExitCode;
use std::time::Instant;
use train::core::batch::{Batch, Kind, Sequence, Weights};
use train::core::lora::split;
use train::core::optim::AdamWConfig;
use train::core::params::Params;
use train::core::stepper::Stepper;
use train::janus::Ops;
use train::janus::config::{JanusConfig, LlamaConfig};
use train::janus::load::{DeviceChoice, dtype_for};
use train::janus::lora::{LoraConfig, MODULES};
use train::sft::data::draw;
use train::sft::loss::loss_with as sft_loss;

/// Runs of each ops with `--compare`.
const COMPARE_ROUNDS: usize = 5;

/// The model's ops (see [`Ops`]).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsChoice {
    /// Our fused ops with their backward (the CPU's training path).
    Fused,
    /// candle's differentiable primitives.
    Composite,
}

impl OpsChoice {
    fn ops(self) -> Ops {
        match self {
            OpsChoice::Fused => Ops::Fused,
            OpsChoice::Composite => Ops::Composite,
        }
    }
}

#[derive(clap::Args)]
pub struct SftBenchArgs {
    /// `tiny` (2 × 64), `mini` (4 × 128), `small` (4 × 256) or `1b` (Janus-Pro-1B's sizes).
    #[arg(long, default_value = "small")]
    preset: String,
    /// `cpu`, `cuda` or `auto`.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Sequences per step (one micro-batch).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Tokens per sequence (default: 320 for tiny/mini/small, 1024 for 1b).
    #[arg(long)]
    seq: Option<usize>,
    /// Timed steps, after the warm-up steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// The accelerator's dense BF16 peak for MFU (H100/H200 SXM: 989).
    #[arg(long, default_value_t = 989.0)]
    peak_tflops: f64,
    /// Print one JSON line of the figures instead of text (one per ops with `--compare`).
    #[arg(long)]
    json: bool,
    /// The model's ops.
    #[arg(long, value_enum, default_value = "fused")]
    ops: OpsChoice,
    /// Run the composite ops and the fused ones by turns, three times each, and print
    /// every run and the speed-up of the best ones.
    #[arg(long)]
    compare: bool,
    /// Instead of the SFT step: AdamW alone, composite against fused (FP32, BF16 and
    /// 8-bit moments), over the tiny and small presets' parameters and a flat segment of
    /// `--optim-elements` standing in for 1B, on the CPU.
    #[arg(long)]
    optim_bench: bool,
    /// Checkpoint every decoder layer (activations recomputed in the backward).
    #[arg(long)]
    checkpointing: bool,
    /// Train LoRA adapters of this rank (alpha = 2 × rank, all seven projections)
    /// instead of every weight.
    #[arg(long)]
    lora: Option<usize>,
    /// The flat segment's length for `--optim-bench`.
    #[arg(long, default_value_t = 1 << 26)]
    optim_elements: usize,
}

/// Janus-Pro-1B's generation path (janus_candle.md A1).
fn janus_pro_1b() -> JanusConfig {
    let mut c = JanusConfig::small(102_400, 16_384);
    c.language = LlamaConfig {
        vocab_size: 102_400,
        hidden_size: 2048,
        intermediate_size: 5632,
        num_hidden_layers: 24,
        num_attention_heads: 16,
        num_key_value_heads: 16,
        head_dim: 128,
        max_position_embeddings: 16384,
        ..LlamaConfig::default()
    };
    c.head_embed = 2048;
    c.vq = Default::default();
    c
}

fn preset(name: &str) -> Result<(JanusConfig, usize, usize)> {
    Ok(match name {
        "tiny" => (JanusConfig::tiny(1024, 256), 256, 320),
        "mini" => (JanusConfig::mini(1024, 256), 256, 320),
        "small" => (JanusConfig::small(1024, 256), 256, 320),
        "1b" => (janus_pro_1b(), 576, 1024),
        other => bail!("preset `{other}`: tiny, mini, small or 1b"),
    })
}

/// Model FLOPs of one step over `rows` sequences of `text` then `image` tokens.
fn flops(c: &JanusConfig, rows: usize, text: usize, image: usize) -> f64 {
    let l = &c.language;
    let (h, q, kv) = (
        l.hidden_size as f64,
        (l.num_attention_heads * l.head_dim) as f64,
        (l.num_key_value_heads * l.head_dim) as f64,
    );
    let layer = 2.0 * h * q + 2.0 * h * kv + 3.0 * h * l.intermediate_size as f64;
    let seq = (text + image) as f64;
    let per_token =
        6.0 * layer * l.num_hidden_layers as f64 + 12.0 * l.num_hidden_layers as f64 * q * seq;
    let head_embed = c.head_embed as f64;
    let gen_head = h * head_embed + head_embed * c.image_vocab as f64;
    let aligner = c.code_dim as f64 * h + (c.aligner_depth - 1) as f64 * h * h;
    // Positions 0..seq-1 predict the next token: text − 1 text labels, then the last
    // text token and every code but the last predict the image codes.
    let labels_text = text as f64 - 1.0;
    let labels_image = image as f64;
    let per_row = per_token * seq
        + 6.0 * labels_text * h * l.vocab_size as f64
        + 6.0 * labels_image * gen_head
        + 6.0 * image as f64 * aligner;
    per_row * rows as f64
}

pub fn run(args: SftBenchArgs) -> Result<ExitCode> {
    if args.optim_bench {
        let (tiny, small) = (preset("tiny")?.0, preset("small")?.0);
        crate::optim::run(&tiny, &small, args.optim_elements, args.steps, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.compare {
        measure(&args, args.ops)?;
        return Ok(ExitCode::SUCCESS);
    }
    // The two alternate, and the best run of each counts: other work on the machine
    // comes and goes between runs.
    let (mut composite, mut fused) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..COMPARE_ROUNDS {
        composite = composite.min(measure(&args, OpsChoice::Composite)?);
        fused = fused.min(measure(&args, OpsChoice::Fused)?);
    }
    if !args.json {
        println!(
            "fused / composite, best of {COMPARE_ROUNDS} runs each: {:.2}× tokens/s ({:.3} → {:.3} s/step)",
            composite / fused,
            composite,
            fused
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Time the step with `ops` and print its figures; the seconds per step.
fn measure(args: &SftBenchArgs, ops: OpsChoice) -> Result<f64> {
    let (config, image_tokens, default_seq) = preset(&args.preset)?;
    let seq = args.seq.unwrap_or(default_seq);
    let image = image_tokens.min(seq / 2);
    let text = seq - image;
    if text < 2 {
        bail!("--seq {seq} is too short");
    }
    let device = args.device.open().map_err(anyhow::Error::msg)?;
    let dtype = dtype_for(&device);
    let params = Params::random(&config, &device)?;
    let count = params.count();
    let adamw = AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.01,
        moments: Default::default(),
        seed: 0,
    };
    let lora = args.lora.map(|rank| LoraConfig {
        rank,
        alpha: 2.0 * rank as f64,
        target_modules: MODULES.iter().map(|m| m.to_string()).collect(),
        seed: 0,
    });
    let (params, frozen) = split(&config, params, lora, dtype)?;
    let mut stepper = Stepper::new(config.clone(), params, adamw, dtype)?
        .with_checkpointing(args.checkpointing)
        .with_frozen(frozen);
    let vocab = config.language.vocab_size as u64;
    let rows: Vec<Sequence> = (0..args.batch)
        .map(|r| {
            let mut ids: Vec<u32> = (0..text)
                .map(|j| (draw(&(r, j, "text")) % vocab) as u32)
                .collect();
            ids.extend(
                (0..image).map(|j| (draw(&(r, j, "image")) % config.image_vocab as u64) as u32),
            );
            let is_image: Vec<bool> = (0..seq).map(|j| j >= text).collect();
            let labels = (1..seq)
                .map(|j| Some(if is_image[j] { Kind::Image } else { Kind::Text }))
                .collect();
            Sequence {
                ids,
                is_image,
                labels,
            }
        })
        .collect();
    let weights = Weights {
        text: 2.0,
        image: 1.0,
        begin_of_image: 0.0,
    };
    let batch = Batch::new(&rows, 0, weights, &device)?;
    let mut loss = 0.0;
    let mut step = |stepper: &mut Stepper| {
        stepper.update(std::slice::from_ref(&batch), 1e-5, 1.0, |model, batch| {
            let l = sft_loss(model, batch, 1.0, ops.ops())?;
            loss = l.loss.to_scalar::<f32>()? as f64;
            Ok(l.loss)
        })
    };
    for _ in 0..args.warmup {
        step(&mut stepper)?;
    }
    device.synchronize()?;
    let start = Instant::now();
    let mut optimizer_s = 0.0;
    for _ in 0..args.steps {
        step(&mut stepper)?;
        optimizer_s += stepper.optimizer_seconds();
    }
    device.synchronize()?;
    let step_s = start.elapsed().as_secs_f64() / args.steps.max(1) as f64;
    let optimizer_share = optimizer_s / (step_s * args.steps.max(1) as f64);
    let tokens_per_s = (args.batch * seq) as f64 / step_s;
    let tflops = flops(&config, args.batch, text, image) / step_s / 1e12;
    let mfu = (!device.is_cpu()).then(|| tflops / args.peak_tflops);
    // The process's peak: run each memory option in a process of its own.
    let memory = stepper.memory();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "impl": "reasongen (candle)", "ops": format!("{ops:?}").to_lowercase(), "preset": args.preset, "device": format!("{device:?}"),
                "dtype": format!("{dtype:?}"), "parameters": count, "batch": args.batch, "seq": seq,
                "text_tokens": text, "image_tokens": image, "step_s": step_s,
                "tokens_per_s": tokens_per_s, "tflops": tflops, "mfu": mfu, "loss": loss,
                "optimizer_share": optimizer_share, "checkpointing": args.checkpointing,
                "lora_rank": args.lora, "memory": memory,
            })
        );
    } else {
        println!(
            "SFT step, preset {} ({:.1} M parameters, FP32 masters, {dtype:?} compute, {} ops) on {device:?}",
            args.preset,
            count as f64 / 1e6,
            format!("{ops:?}").to_lowercase()
        );
        println!(
            "  batch {} × {seq} tokens ({text} text + {image} image): {:.3} s/step, {:.0} tokens/s, {:.2} TFLOP/s{}",
            args.batch,
            step_s,
            tokens_per_s,
            tflops,
            mfu.map_or(String::new(), |m| format!(", MFU {:.1}%", 100.0 * m))
        );
        println!(
            "  norm and AdamW: {:.1}% of the step",
            100.0 * optimizer_share
        );
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        println!(
            "  checkpointing {}, LoRA {}: peak RSS {}, {} trainable parameters; parameters {:.1} MiB, gradients {:.1} MiB, optimiser {:.1} MiB, frozen {:.1} MiB",
            if args.checkpointing { "on" } else { "off" },
            args.lora.map_or("off".to_string(), |r| format!("rank {r}")),
            memory
                .peak_rss_bytes
                .map_or("unknown".to_string(), |b| format!(
                    "{:.0} MiB",
                    mib(b as usize)
                )),
            memory.trainable_parameters,
            mib(memory.parameter_bytes),
            mib(memory.gradient_bytes),
            mib(memory.optimizer_state_bytes),
            mib(memory.frozen_bytes),
        );
    }
    Ok(step_s)
}
