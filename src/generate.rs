//! `reasongen generate`: prompts in; images and rationales out, to a folder, with the
//! throughput of the generation (rationale and image tokens per second, images per
//! second).
//!
//! Writes `NNNN-S.png` per prompt N and sample S, and `samples.jsonl` with each
//! image's prompt, seed and rationale.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use train::janus::draw::{Drawer, png};
use train::janus::draw::{GenerateConfig, SamplingConfig, sample_seed};
use train::janus::generate::{Timing, Unconditional};
use train::janus::load::DeviceChoice;

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// The Janus-Pro model folder (config.json, weights, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// An image tokenizer folder to decode with (default: the model's own VQ-16).
    #[arg(long)]
    image_tokenizer: Option<PathBuf>,
    /// A prompt (repeatable).
    #[arg(long = "prompt", value_name = "TEXT")]
    prompts: Vec<String>,
    /// A file of prompts, one per line.
    #[arg(long)]
    prompts_file: Option<PathBuf>,
    /// The folder to write the images and `samples.jsonl` into.
    #[arg(long, short)]
    out: PathBuf,
    /// Images per prompt.
    #[arg(long, default_value_t = 1)]
    samples: u32,
    /// No rationale: the image right after the prompt (Janus-Pro's plain mode).
    #[arg(long)]
    plain: bool,
    /// The prompt's text with `{}` for the prompt (default: ReasonGen-R1's, or
    /// Janus-Pro's "A photo of {}." with --plain).
    #[arg(long)]
    template: Option<String>,
    /// Rationale tokens at most.
    #[arg(long, default_value_t = 448)]
    max_rationale_tokens: usize,
    #[arg(long, default_value_t = 1.0)]
    text_temperature: f64,
    #[arg(long)]
    text_top_k: Option<usize>,
    #[arg(long)]
    text_top_p: Option<f64>,
    #[arg(long, default_value_t = 1.0)]
    image_temperature: f64,
    #[arg(long)]
    image_top_k: Option<usize>,
    #[arg(long)]
    image_top_p: Option<f64>,
    /// Classifier-free guidance weight (1: none).
    #[arg(long, default_value_t = 5.0)]
    cfg: f64,
    /// Guide from an unconditional twin without the prompt (masked, as `model.sft`
    /// drops samples by default) rather than from attended pads (Janus' inference).
    #[arg(long)]
    masked_unconditional: bool,
    /// Prompts generated together.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
}

pub fn generate(quiet: bool, args: GenerateArgs) -> Result<ExitCode> {
    let mut prompts = args.prompts.clone();
    if let Some(path) = &args.prompts_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        prompts.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    if prompts.is_empty() {
        anyhow::bail!("no prompts: give --prompt or --prompts-file");
    }
    if args.samples == 0 || args.batch_size == 0 {
        anyhow::bail!("--samples and --batch-size must be at least 1");
    }
    let config = GenerateConfig {
        samples: args.samples,
        rationale: !args.plain,
        template: args.template.clone(),
        max_rationale_tokens: args.max_rationale_tokens,
        text_sampling: SamplingConfig {
            temperature: args.text_temperature,
            top_k: args.text_top_k,
            top_p: args.text_top_p,
        },
        image_sampling: SamplingConfig {
            temperature: args.image_temperature,
            top_k: args.image_top_k,
            top_p: args.image_top_p,
        },
        cfg_weight: args.cfg,
        unconditional: if args.masked_unconditional {
            Unconditional::Masked
        } else {
            Unconditional::Pads
        },
        batch_size: args.batch_size,
        device: args.device,
        benchmark: None,
    };
    let options = config.draw_options();
    let device = args.device.open().map_err(anyhow::Error::msg)?;
    let start = Instant::now();
    let drawer = Drawer::open(&args.model, args.image_tokenizer.as_deref(), &device)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let loading = start.elapsed().as_secs_f64();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let jsonl_path = args.out.join("samples.jsonl");
    let mut jsonl = std::io::BufWriter::new(
        std::fs::File::create(&jsonl_path)
            .with_context(|| format!("creating {}", jsonl_path.display()))?,
    );

    let items: Vec<(usize, u32)> = (0..prompts.len())
        .flat_map(|i| (0..args.samples).map(move |s| (i, s)))
        .collect();
    let mut total = Timing::default();
    let mut done = 0;
    let start = Instant::now();
    for (k, chunk) in items.chunks(args.batch_size).enumerate() {
        let batch: Vec<(String, u64)> = chunk
            .iter()
            .map(|&(i, s)| {
                (
                    prompts[i].clone(),
                    sample_seed(args.seed, &i.to_string(), s),
                )
            })
            .collect();
        let batch_start = Instant::now();
        let (drawings, timing) = drawer.draw(&batch, &options)?;
        total.rationale_tokens += timing.rationale_tokens;
        total.rationale_seconds += timing.rationale_seconds;
        total.image_tokens += timing.image_tokens;
        total.image_seconds += timing.image_seconds;
        for ((&(i, s), (prompt, seed)), drawing) in chunk.iter().zip(&batch).zip(drawings) {
            let file = format!("{i:04}-{s}.png");
            let path = args.out.join(&file);
            std::fs::write(&path, png(&drawing.image)?)
                .with_context(|| format!("writing {}", path.display()))?;
            let line = serde_json::json!({
                "file": file, "prompt": prompt, "sample": s, "seed": seed, "rationale": drawing.rationale,
            });
            writeln!(jsonl, "{line}")
                .with_context(|| format!("writing {}", jsonl_path.display()))?;
        }
        done += chunk.len();
        if !quiet {
            let generating = timing.rationale_seconds + timing.image_seconds;
            let rest = batch_start.elapsed().as_secs_f64() - generating;
            eprintln!(
                "batch {k}: {} images ({done} of {}); rationale {:.3} s, image codes {:.3} s, decoding and writing {rest:.3} s",
                chunk.len(),
                items.len(),
                timing.rationale_seconds,
                timing.image_seconds,
            );
        }
    }
    jsonl
        .flush()
        .with_context(|| format!("writing {}", jsonl_path.display()))?;
    let wall = start.elapsed().as_secs_f64();
    if !quiet {
        let per_s = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        println!("model loaded in {loading:.2} s on {:?}", device);
        if options.rationale.is_some() {
            println!(
                "rationales: {} tokens in {:.2} s, {:.1} tokens/s",
                total.rationale_tokens,
                total.rationale_seconds,
                per_s(total.rationale_tokens, total.rationale_seconds)
            );
        }
        println!(
            "image codes: {} tokens in {:.2} s, {:.1} tokens/s ({} per image, CFG {})",
            total.image_tokens,
            total.image_seconds,
            per_s(total.image_tokens, total.image_seconds),
            drawer.image_tokenizer().tokens(),
            args.cfg
        );
        println!(
            "{} images in {wall:.2} s with decoding and writing: {:.2} images/s",
            items.len(),
            per_s(items.len(), wall)
        );
        println!("wrote {} and {}", args.out.display(), jsonl_path.display());
    }
    Ok(ExitCode::SUCCESS)
}
