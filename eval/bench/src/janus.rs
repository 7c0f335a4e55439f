//! `reasongen bench janus`: generation throughput of Janus-Pro's architecture at the
//! tiny preset (the tests') and the shapes world's preset, with random weights, on
//! the CPU by default: a batch of prompts, each with its unconditional CFG twin, in
//! Janus-Pro's plain mode and with a sampled rationale first (ReasonGen-R1), then
//! VQ-16 decoding of the codes (the tiny VQ-16, 32 × 32 pixels). Prints rationale and
//! image tokens/s and images/s, averaged over timed batches after one warm-up batch.

use anyhow::Result;
use candle_core::Tensor;
use candle_nn::{VarBuilder, VarMap};
use std::process::ExitCode;
use std::time::Instant;
use train::janus::generate::{GenerateOptions, RationaleOptions, Request, generate};
use train::janus::load::{DeviceChoice, dtype_for};
use train::janus::sampling::Sampling;
use train::janus::text::SpecialTokens;
use train::janus::vq16::Vq16;
use train::janus::{Janus, JanusConfig};

#[derive(clap::Args)]
pub struct JanusBenchArgs {
    /// Prompts generated together (each with its unconditional CFG twin).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Classifier-free guidance weight (1: no unconditional rows).
    #[arg(long, default_value_t = 5.0)]
    cfg: f64,
    /// Timed batches per preset and mode, after one warm-up batch.
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Rationale tokens at most (sampled until EOS or this cap).
    #[arg(long, default_value_t = 64)]
    rationale_tokens: usize,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// Special token ids of the synthetic vocabulary (the presets' ids 0..7).
const SPECIAL: SpecialTokens = SpecialTokens {
    pad: 0,
    bos: 1,
    eos: 2,
    begin_of_image: 3,
    end_of_image: 4,
    user: 5,
    assistant: 6,
};
const TEXT_VOCAB: usize = 320;
const IMAGE_VOCAB: usize = 256;

/// `batch` prompts of 12 to 27 tokens in the chat format; with `image_now`, ending in
/// `<begin_of_image>` (plain mode).
fn requests(batch: usize, image_now: bool) -> Vec<Request> {
    (0..batch)
        .map(|r| {
            let mut ids = vec![SPECIAL.bos, SPECIAL.user];
            ids.extend(
                (0..10 + (r * 7) % 16).map(|k| 7 + ((r * 31 + k * 17) % (TEXT_VOCAB - 7)) as u32),
            );
            ids.push(SPECIAL.assistant);
            if image_now {
                ids.push(SPECIAL.begin_of_image);
            }
            Request {
                prompt_ids: ids,
                seed: r as u64,
            }
        })
        .collect()
}

/// Mean seconds per timed batch: rationale, image codes, decoding; and tokens.
#[derive(Default)]
struct Means {
    rationale_s: f64,
    rationale_tokens: f64,
    image_s: f64,
    image_tokens: f64,
    decode_s: f64,
}

fn run_mode(
    model: &Janus,
    vq: &Vq16,
    batch: usize,
    options: &GenerateOptions,
    runs: usize,
) -> Result<Means> {
    let requests = requests(batch, options.rationale.is_none());
    let mut m = Means::default();
    for run in 0..=runs {
        let (out, timing) = generate(model, &SPECIAL, &requests, options)?;
        let start = Instant::now();
        let codes: Vec<u32> = out.iter().flat_map(|g| g.image_tokens.clone()).collect();
        let codes = Tensor::from_vec(codes, (out.len(), options.image_tokens), vq.device())?;
        let images = vq.decode_images(&codes)?;
        let decode_s = start.elapsed().as_secs_f64();
        assert_eq!(images.len(), batch);
        if run > 0 {
            m.rationale_s += timing.rationale_seconds / runs as f64;
            m.rationale_tokens += timing.rationale_tokens as f64 / runs as f64;
            m.image_s += timing.image_seconds / runs as f64;
            m.image_tokens += timing.image_tokens as f64 / runs as f64;
            m.decode_s += decode_s / runs as f64;
        }
    }
    Ok(m)
}

pub fn run(args: JanusBenchArgs) -> Result<ExitCode> {
    if args.batch == 0 || args.runs == 0 {
        anyhow::bail!("--batch and --runs must be at least 1");
    }
    let device = args.device.open().map_err(anyhow::Error::msg)?;
    let dtype = dtype_for(&device);
    let threads = if device.is_cpu() {
        format!(", {} threads", candle_core::utils::get_num_threads())
    } else {
        String::new()
    };
    let vq_config = JanusConfig::tiny(TEXT_VOCAB, IMAGE_VOCAB).vq;
    let image_tokens = vq_config.tokens();
    println!(
        "Janus-Pro architecture, random weights, {device:?} in {dtype:?}{threads}: batch {}, CFG {}, {image_tokens} codes per image, {} timed batches",
        args.batch, args.cfg, args.runs
    );
    println!(
        "  preset                          mode       rationale tok/s  image tok/s  images/s (codes)  images/s (with decode)"
    );
    let vq_vars = VarMap::new();
    let vq = Vq16::new(vq_config, VarBuilder::from_varmap(&vq_vars, dtype, &device))?;
    for (name, config) in [
        ("tiny (2 × 64)", JanusConfig::tiny(TEXT_VOCAB, IMAGE_VOCAB)),
        (
            "shapes world (4 × 256)",
            JanusConfig::small(TEXT_VOCAB, IMAGE_VOCAB),
        ),
    ] {
        let vars = VarMap::new();
        let model = Janus::new(&config, VarBuilder::from_varmap(&vars, dtype, &device))?;
        for rationale in [false, true] {
            let options = GenerateOptions {
                rationale: rationale.then_some(RationaleOptions {
                    sampling: Sampling::MULTINOMIAL,
                    max_tokens: args.rationale_tokens,
                }),
                image: Sampling::MULTINOMIAL,
                cfg_weight: args.cfg,
                unconditional: train::janus::generate::Unconditional::Pads,
                image_tokens,
            };
            let m = run_mode(&model, &vq, args.batch, &options, args.runs)?;
            let per_s = |n: f64, s: f64| if s > 0.0 { n / s } else { 0.0 };
            let generating = m.rationale_s + m.image_s;
            let rationale_rate = if rationale {
                format!("{:.0}", per_s(m.rationale_tokens, m.rationale_s))
            } else {
                "-".into()
            };
            println!(
                "  {name:<30}  {:<9}  {rationale_rate:>15}  {:>11.0}  {:>16.2}  {:>22.2}",
                if rationale { "rationale" } else { "plain" },
                per_s(m.image_tokens, m.image_s),
                per_s(args.batch as f64, generating),
                per_s(args.batch as f64, generating + m.decode_s),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
