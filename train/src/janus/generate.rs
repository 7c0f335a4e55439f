//! Generation: a rationale, then the image tokens with classifier-free guidance, for a
//! batch of prompts (ReasonGen-R1); or the image tokens right after the prompt
//! (Janus-Pro's plain mode).
//!
//! 1. **Rationale** (`lm_head`, KV cache, no guidance): rows are left-padded and sampled
//!    until each meets EOS or `<begin_of_image>`, or `max_tokens`. As in ReasonGen-R1's
//!    rollout, EOS becomes `<begin_of_image>`, and a row cut at the cap has its last
//!    token replaced by it.
//! 2. **Image** (`gen_head`): the prompt, rationale and `<begin_of_image>` are encoded
//!    afresh. Each conditional row gets an unconditional twin in which every token but
//!    BOS and `<begin_of_image>` is the pad token, attended as in Janus'
//!    `generation_inference.py` ([`Unconditional::Pads`]), or left out as the SFT's
//!    dropped rows leave them ([`Unconditional::Masked`]) (rows `0..B` conditional,
//!    `B..2B` unconditional, as transformers orders them); the logits are
//!    `uncond + w · (cond − uncond)` (no twin when w = 1). A drawn code enters the next step as `gen_aligner(gen_embed(code))`
//!    in both rows.
//!
//! Sampling runs on the model's device ([`super::sampling`]); each row draws from its
//! own seeded streams (one for the rationale, one for the image), so a prompt and seed
//! give the same result whatever else is in the batch, up to floating-point rounding.

use super::cache::Padding;
use super::error::{JanusError, Result};
use super::llama::Ops;
use super::model::Janus;
use super::sampling::{RowRng, Sampling, guide, sample};
use super::text::SpecialTokens;
use candle_core::{IndexOp, Tensor};
use std::time::Instant;

/// How the rationale is written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RationaleOptions {
    pub sampling: Sampling,
    /// Tokens at most, `<begin_of_image>` included (ReasonGen-R1: 448).
    pub max_tokens: usize,
}

/// What an unconditional row looks like: in SFT, a CFG-dropped sample; in generation,
/// the twin that guidance extrapolates from.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Unconditional {
    /// ReasonGen-R1's SFT: prompt and rationale become pad with attention 0, i.e. they
    /// are absent: `[BOS] <begin_of_image> codes …` (computed without the pads).
    #[default]
    Masked,
    /// As the unconditional row of Janus' inference (and ReasonGen-R1's evaluation):
    /// the pads are attended tokens, which a model learns only if trained on them.
    Pads,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerateOptions {
    /// `None`: Janus-Pro's plain mode; the prompts end with `<begin_of_image>`.
    pub rationale: Option<RationaleOptions>,
    pub image: Sampling,
    /// Classifier-free guidance weight (Janus-Pro and ReasonGen-R1's evaluation: 5).
    pub cfg_weight: f64,
    /// The unconditional twin of each row under guidance.
    pub unconditional: Unconditional,
    /// Codes per image (576 for VQ-16 at 384²).
    pub image_tokens: usize,
}

/// One row to generate: its prompt's ids (from [`super::text::TextTokenizer::prompt_ids`])
/// and its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub prompt_ids: Vec<u32>,
    pub seed: u64,
}

/// What one row produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    /// The rationale's ids, without the token that ended it.
    pub rationale_ids: Vec<u32>,
    /// The rationale reached `max_tokens` without ending (its last token gave way to
    /// `<begin_of_image>`).
    pub capped: bool,
    /// The image codes, row-major over the code grid.
    pub image_tokens: Vec<u32>,
}

/// Work done by one call, for throughput figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timing {
    pub rationale_tokens: usize,
    pub rationale_seconds: f64,
    pub image_tokens: usize,
    pub image_seconds: f64,
}

/// The second stream of a row (its image draws), apart from the rationale's.
fn image_seed(seed: u64) -> u64 {
    seed ^ 0x6A09_E667_F3BC_C909
}

impl GenerateOptions {
    pub fn check(&self) -> std::result::Result<(), String> {
        if let Some(r) = &self.rationale {
            r.sampling.check().map_err(|e| format!("rationale: {e}"))?;
        }
        self.image.check().map_err(|e| format!("image: {e}"))?;
        if !(self.cfg_weight.is_finite()) {
            return Err(format!("cfg weight {} must be finite", self.cfg_weight));
        }
        if self.image_tokens == 0 {
            return Err("an image needs at least one code".into());
        }
        Ok(())
    }
}

/// `rows` left-padded with `pad` into a [rows, width] u32 tensor, with their padding.
fn left_pad(model: &Janus, rows: &[Vec<u32>], pad: u32) -> Result<(Tensor, Padding)> {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows.len() * width);
    for row in rows {
        ids.extend(std::iter::repeat_n(pad, width - row.len()));
        ids.extend_from_slice(row);
    }
    let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
    let ids = Tensor::from_vec(ids, (rows.len(), width), model.device())?;
    Ok((ids, Padding::left(&lengths, width)))
}

/// The last position's hidden state of each row, [B, H], contiguous (CUDA's matmul
/// takes no strided rows).
fn last(hidden: &Tensor) -> Result<Tensor> {
    let t = hidden.dim(1)?;
    Ok(hidden.i((.., t - 1, ..))?.contiguous()?)
}

/// Sample each row's rationale; returns the token lists as they end (stop token kept
/// when one ended the row).
fn rationales(
    model: &Janus,
    special: &SpecialTokens,
    prompts: &[Vec<u32>],
    seeds: &[u64],
    options: &RationaleOptions,
) -> Result<Vec<Vec<u32>>> {
    let rows = prompts.len();
    let mut out = vec![Vec::new(); rows];
    if options.max_tokens == 0 {
        return Ok(out);
    }
    let (ids, padding) = left_pad(model, prompts, special.pad)?;
    let mut cache = model.cache(rows, padding.len() + options.max_tokens)?;
    let hidden = model.forward(
        &model.embed_text(&ids)?,
        &padding,
        Some(&mut cache),
        Ops::inference(model.device(), model.dtype()),
    )?;
    let mut logits = model.text_logits(&last(&hidden)?)?;
    let mut rng = RowRng::new(seeds);
    let mut done = vec![false; rows];
    for step in 0..options.max_tokens {
        let next = sample(&logits, &options.sampling, &rng.uniforms(model.device())?)?;
        let next: Vec<u32> = next.to_vec1()?;
        let live: Vec<bool> = done.iter().map(|d| !d).collect();
        for (r, &token) in next.iter().enumerate() {
            if live[r] {
                out[r].push(token);
                done[r] = token == special.eos || token == special.begin_of_image;
            }
        }
        if step + 1 == options.max_tokens || done.iter().all(|&d| d) {
            break;
        }
        // Rows that have ended feed padding from here on.
        let feed: Vec<u32> = next
            .iter()
            .zip(&done)
            .map(|(&t, &d)| if d { special.pad } else { t })
            .collect();
        let feed = Tensor::from_vec(feed, (rows, 1), model.device())?;
        let padding = Padding::from_fn(rows, 1, |r, _| !done[r]);
        let hidden = model.forward(
            &model.embed_text(&feed)?,
            &padding,
            Some(&mut cache),
            Ops::inference(model.device(), model.dtype()),
        )?;
        logits = model.text_logits(&last(&hidden)?)?;
    }
    Ok(out)
}

/// Draw `options.image_tokens` codes per prefix (each ending with `<begin_of_image>`).
fn images(
    model: &Janus,
    special: &SpecialTokens,
    prefixes: &[Vec<u32>],
    seeds: &[u64],
    options: &GenerateOptions,
) -> Result<Vec<Vec<u32>>> {
    let guided = options.cfg_weight != 1.0;
    let mut rows = prefixes.to_vec();
    if guided {
        let kept = |t: u32| t == special.bos || t == special.begin_of_image;
        rows.extend(prefixes.iter().map(|p| {
            match options.unconditional {
                Unconditional::Pads => p
                    .iter()
                    .map(|&t| if kept(t) { t } else { special.pad })
                    .collect::<Vec<u32>>(),
                // Left padding masks what the pads stand for.
                Unconditional::Masked => p.iter().copied().filter(|&t| kept(t)).collect(),
            }
        }));
    }
    let (ids, padding) = left_pad(model, &rows, special.pad)?;
    let n = rows.len();
    let mut cache = model.cache(n, padding.len() + options.image_tokens)?;
    let hidden = model.forward(
        &model.embed_text(&ids)?,
        &padding,
        Some(&mut cache),
        Ops::inference(model.device(), model.dtype()),
    )?;
    let mut logits = model.image_logits(&last(&hidden)?)?;
    let seeds: Vec<u64> = seeds.iter().map(|&s| image_seed(s)).collect();
    let mut rng = RowRng::new(&seeds);
    let mut codes = Vec::with_capacity(options.image_tokens);
    for step in 0..options.image_tokens {
        let scores = if guided {
            guide(&logits, options.cfg_weight)?
        } else {
            logits
        };
        let next = sample(&scores, &options.image, &rng.uniforms(model.device())?)?;
        codes.push(next.clone());
        if step + 1 == options.image_tokens {
            break;
        }
        let embeds = model.embed_image(&next.unsqueeze(1)?)?;
        let embeds = if guided {
            Tensor::cat(&[&embeds, &embeds], 0)?
        } else {
            embeds
        };
        let hidden = model.forward(
            &embeds,
            &Padding::none(n, 1),
            Some(&mut cache),
            Ops::inference(model.device(), model.dtype()),
        )?;
        logits = model.image_logits(&last(&hidden)?)?;
    }
    Ok(Tensor::stack(&codes, 1)?.to_vec2()?)
}

/// Generate every request (one batch); see the module documentation.
pub fn generate(
    model: &Janus,
    special: &SpecialTokens,
    requests: &[Request],
    options: &GenerateOptions,
) -> Result<(Vec<Generation>, Timing)> {
    options.check().map_err(JanusError::Invalid)?;
    if let Some(r) = requests.iter().find(|r| r.prompt_ids.is_empty()) {
        return Err(JanusError::Invalid(format!(
            "a request (seed {}) has no prompt",
            r.seed
        )));
    }
    if options.rationale.is_none()
        && let Some(r) = requests
            .iter()
            .find(|r| r.prompt_ids.last() != Some(&special.begin_of_image))
    {
        return Err(JanusError::Invalid(format!(
            "without a rationale the prompt must end with <begin_of_image> (request with seed {})",
            r.seed
        )));
    }
    let mut timing = Timing::default();
    if requests.is_empty() {
        return Ok((Vec::new(), timing));
    }
    let prompts: Vec<Vec<u32>> = requests.iter().map(|r| r.prompt_ids.clone()).collect();
    let seeds: Vec<u64> = requests.iter().map(|r| r.seed).collect();
    let start = Instant::now();
    let (rationales, prefixes) = match &options.rationale {
        None => (vec![(Vec::new(), false); requests.len()], prompts),
        Some(r) => {
            let written = rationales(model, special, &prompts, &seeds, r)?;
            timing.rationale_tokens = written.iter().map(Vec::len).sum();
            let mut kept = Vec::with_capacity(written.len());
            let mut prefixes = Vec::with_capacity(written.len());
            for (prompt, mut tokens) in prompts.into_iter().zip(written) {
                // EOS, `<begin_of_image>` or the last token at the cap gives way to
                // `<begin_of_image>`.
                let last = tokens.pop();
                let capped = last.is_some_and(|t| t != special.eos && t != special.begin_of_image);
                let mut prefix = prompt;
                prefix.extend_from_slice(&tokens);
                prefix.push(special.begin_of_image);
                kept.push((tokens, capped));
                prefixes.push(prefix);
            }
            (kept, prefixes)
        }
    };
    timing.rationale_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let codes = images(model, special, &prefixes, &seeds, options)?;
    timing.image_seconds = start.elapsed().as_secs_f64();
    timing.image_tokens = codes.iter().map(Vec::len).sum();
    let out = rationales
        .into_iter()
        .zip(codes)
        .map(|((rationale_ids, capped), image_tokens)| Generation {
            rationale_ids,
            capped,
            image_tokens,
        })
        .collect();
    Ok((out, timing))
}
