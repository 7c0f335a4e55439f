//! Held-out shapes-GenEval during training (SFT and GRPO alike): the first
//! `max_prompts` prompts of an `rl_prompt` table with shapes-GenEval records, each
//! drawn `samples` times by the model as it stands in memory, with `model.generate`'s
//! settings and seeds ([`GenerateConfig`], [`sample_seed`]), and judged by the exact
//! judge ([`eval::shapes_geneval`]).

use crate::janus::draw::{GenerateConfig, draw, sample_seed};
use crate::janus::load::DeviceChoice;
use crate::janus::model::Janus;
use crate::janus::text::TextTokenizer;
use crate::tokenizer::ImageTokenizer;
use datasets::shapes::{Judge, JudgeOptions, Metadata};
use datasets::table::TableReader;
use eval::shapes_geneval::{Evaluation, Judged, judge, records, summarize};
use pipeline::{StageContext, StageError};
use schemars::JsonSchema;
use schemas::rl_prompt::RlPrompt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Periodic generation on held-out prompts, judged by the shapes judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalOptions {
    /// Every this many steps, and after the last (0: after the last only).
    #[serde(default)]
    pub every: usize,
    /// The first this many prompts of `eval_prompts`.
    #[serde(default = "default_eval_prompts")]
    pub max_prompts: usize,
    /// How the images are generated (`rationale` follows the run's own switch).
    #[serde(default)]
    pub generate: GenerateConfig,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            every: 0,
            max_prompts: default_eval_prompts(),
            generate: GenerateConfig::default(),
        }
    }
}

fn default_eval_prompts() -> usize {
    60
}

/// Bootstrap resamples of the interval reported during training.
const BOOTSTRAP_ROUNDS: usize = 1000;

/// The held-out prompts and how they are drawn.
pub struct HeldOut {
    prompts: Vec<(String, String)>,
    records: HashMap<String, Metadata>,
    generate: GenerateConfig,
    seed: u64,
    images: Arc<dyn ImageTokenizer>,
}

impl HeldOut {
    /// The first `max` prompts of the table at `dir`, drawn with `generate` and seeds
    /// from `seed`, decoded by `images`.
    pub fn open(
        dir: &Path,
        max: usize,
        generate: GenerateConfig,
        seed: u64,
        images: Arc<dyn ImageTokenizer>,
    ) -> Result<HeldOut, StageError> {
        let mut chosen = Vec::new();
        'read: for rows in TableReader::open(dir)?.rows::<RlPrompt>()? {
            for p in rows? {
                if chosen.len() == max {
                    break 'read;
                }
                chosen.push(p);
            }
        }
        if chosen.is_empty() {
            return Err(StageError::msg(format!(
                "the held-out prompts ({}) are empty",
                dir.display()
            )));
        }
        let prompts = chosen
            .iter()
            .map(|p| (p.id.clone(), p.prompt.clone()))
            .collect();
        Ok(HeldOut {
            prompts,
            records: records(chosen)?,
            generate,
            seed,
            images,
        })
    }

    /// The held-out evaluation of a training node: its `eval_prompts` input, when bound,
    /// drawn as `eval` says (in the run's rationale mode, on its device) and decoded by
    /// `images`.
    pub fn of_node(
        ctx: &StageContext,
        eval: &EvalOptions,
        rationale: bool,
        device: DeviceChoice,
        seed: u64,
        images: Arc<dyn ImageTokenizer>,
    ) -> Result<Option<HeldOut>, StageError> {
        let Some(prompts) = ctx.inputs("eval_prompts").first() else {
            return Ok(None);
        };
        let mut generate = eval.generate.clone();
        generate.rationale = rationale;
        generate.device = device;
        HeldOut::open(&prompts.dir, eval.max_prompts, generate, seed, images).map(Some)
    }

    /// The scores at `step` of `model` (as `eval.jsonl` holds them), logged.
    pub fn scores_at(
        &self,
        step: usize,
        model: &Janus,
        text: &TextTokenizer,
        ctx: &StageContext,
    ) -> Result<serde_json::Value, StageError> {
        let e = self.run(model, text)?;
        let mut result = e.scores();
        result["step"] = serde_json::json!(step);
        ctx.log(format!(
            "step {step}: shapes-GenEval overall {:.3} (95% CI {:.3}–{:.3}) on {} prompts",
            e.overall, e.interval.0, e.interval.1, e.summary.prompts
        ));
        Ok(result)
    }

    /// Draw every prompt `samples` times with `model` and judge the images.
    pub fn run(&self, model: &Janus, text: &TextTokenizer) -> Result<Evaluation, StageError> {
        let options = self.generate.draw_options();
        let items: Vec<(&str, &str, u32)> = self
            .prompts
            .iter()
            .flat_map(|(id, prompt)| {
                (0..self.generate.samples).map(move |s| (id.as_str(), prompt.as_str(), s))
            })
            .collect();
        let shapes = Judge::new(JudgeOptions::default());
        let mut judged: Vec<Judged> = Vec::with_capacity(items.len());
        for chunk in items.chunks(self.generate.batch_size.max(1)) {
            let batch: Vec<(String, u64)> = chunk
                .iter()
                .map(|(id, prompt, s)| (prompt.to_string(), sample_seed(self.seed, id, *s)))
                .collect();
            let (drawings, _) = draw(model, text, self.images.as_ref(), &batch, &options)
                .map_err(StageError::msg)?;
            for ((id, _, s), d) in chunk.iter().zip(drawings) {
                judged.push(judge(
                    &shapes,
                    format!("{id}-{s}"),
                    id.to_string(),
                    &d.image,
                    &self.records[*id],
                ));
            }
        }
        Ok(summarize(&judged, BOOTSTRAP_ROUNDS, self.seed)?)
    }
}
