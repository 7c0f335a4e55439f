//! Rollouts as ReasonGen-R1 samples them (paper.md §3.1): each prompt in the RL
//! template (`"A photo of {}. Output a richly detailed prompt: "`), left-padded; the
//! rationale by multinomial sampling at T = 1 without guidance, up to
//! `max_rationale_tokens`, EOS rewritten to `<begin_of_image>` and a capped row's last
//! token replaced by it; the image codes at T = 1 with `cfg_weight`; a final EOS. The
//! plain mode (`rationale = false`) draws the image right after the prompt.
//!
//! Each trajectory's randomness comes from (seed, step, generation batch, prompt id,
//! sample) alone, so a resumed run draws the same rollouts as an uninterrupted one,
//! whatever the batching. A trajectory becomes a training [`Sequence`]: its response
//! (rationale, `<begin_of_image>`, codes, EOS) is labelled, each token by its head.

use crate::core::batch::{Kind, Sequence};
use crate::janus::error::Result;
use crate::janus::generate::{GenerateOptions, RationaleOptions, Request, Unconditional, generate};
use crate::janus::model::Janus;
use crate::janus::sampling::Sampling;
use crate::janus::text::TextTokenizer;
use pipeline::Digest;

/// How rollouts are drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutOptions {
    /// The user turn, `{}` standing for the prompt.
    pub template: String,
    /// `None`: the plain mode, no rationale.
    pub max_rationale_tokens: Option<usize>,
    pub cfg_weight: f64,
    pub unconditional: Unconditional,
    /// Codes per image.
    pub image_tokens: usize,
    /// Rows generated together.
    pub batch_size: usize,
}

/// One sampled trajectory.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    pub prompt_ids: Vec<u32>,
    /// Without the token that ended it.
    pub rationale_ids: Vec<u32>,
    pub capped: bool,
    pub codes: Vec<u32>,
}

/// The seed of one trajectory.
pub fn seed(seed: u64, step: usize, generation: usize, prompt_id: &str, sample: usize) -> u64 {
    Digest::of_json(&("grpo", seed, step, generation, prompt_id, sample)).seed()
}

/// Sample a trajectory for each `(prompt, seed)` with `model`.
pub fn sample(
    model: &Janus,
    text: &TextTokenizer,
    rows: &[(&str, u64)],
    options: &RolloutOptions,
) -> Result<Vec<Trajectory>> {
    let plain = options.max_rationale_tokens.is_none();
    let temperature_one = Sampling {
        temperature: 1.0,
        top_k: None,
        top_p: None,
    };
    let generate_options = GenerateOptions {
        rationale: options
            .max_rationale_tokens
            .map(|max_tokens| RationaleOptions {
                sampling: temperature_one,
                max_tokens,
            }),
        image: temperature_one,
        cfg_weight: options.cfg_weight,
        unconditional: options.unconditional,
        image_tokens: options.image_tokens,
    };
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(options.batch_size.max(1)) {
        let requests = chunk
            .iter()
            .map(|(prompt, seed)| {
                Ok(Request {
                    prompt_ids: text.prompt_ids(&options.template.replace("{}", prompt), plain)?,
                    seed: *seed,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (generations, _) = generate(model, &text.special, &requests, &generate_options)?;
        out.extend(
            requests
                .into_iter()
                .zip(generations)
                .map(|(r, g)| Trajectory {
                    prompt_ids: r.prompt_ids,
                    rationale_ids: g.rationale_ids,
                    capped: g.capped,
                    codes: g.image_tokens,
                }),
        );
    }
    Ok(out)
}

impl Trajectory {
    /// The training sequence: prompt, then the response `rationale <begin_of_image>
    /// codes EOS` (plain mode: the prompt ends with `<begin_of_image>`; then codes and
    /// EOS), every response token labelled.
    pub fn sequence(&self, text: &TextTokenizer, rationale: bool) -> Sequence {
        let s = text.special;
        let mut ids = self.prompt_ids.clone();
        let first = ids.len() - 1;
        if rationale {
            ids.extend_from_slice(&self.rationale_ids);
            ids.push(s.begin_of_image);
        }
        let text_len = ids.len();
        ids.extend_from_slice(&self.codes);
        ids.push(s.eos);
        let mut is_image = vec![false; ids.len()];
        for flag in &mut is_image[text_len..text_len + self.codes.len()] {
            *flag = true;
        }
        let labels = (0..ids.len() - 1)
            .map(|j| {
                (j >= first).then(|| {
                    if is_image[j + 1] {
                        Kind::Image
                    } else if j + 1 == text_len - 1 && rationale {
                        Kind::BeginOfImage
                    } else {
                        Kind::Text
                    }
                })
            })
            .collect();
        Sequence {
            ids,
            is_image,
            labels,
        }
    }
}
