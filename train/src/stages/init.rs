//! `model.init`: a fresh Janus-Pro model folder to train from scratch: a named preset
//! of the architecture, seeded random weights, the image vocabulary of the bound image
//! tokenizer (e.g. the shapes world's patch VQ), and a byte-level BPE text tokenizer
//! learned from the text of the bound tables ([`crate::init`]).
//!
//! The folder has no VQ-16 weights: the model draws through the image tokenizer it was
//! made for (bind it as `model.generate`'s `tokenizer`).

use crate::init::{text, write_model};
use crate::janus::JanusConfig;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext,
    StageError,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The architecture's sizes ([`JanusConfig`]'s presets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// 2 layers, 64 wide (tests).
    Tiny,
    /// 4 layers, 128 wide.
    Mini,
    /// 4 layers, 256 wide.
    Small,
}

impl Preset {
    pub fn config(self, text_vocab: usize, image_vocab: usize) -> JanusConfig {
        match self {
            Preset::Tiny => JanusConfig::tiny(text_vocab, image_vocab),
            Preset::Mini => JanusConfig::mini(text_vocab, image_vocab),
            Preset::Small => JanusConfig::small(text_vocab, image_vocab),
        }
    }
}

/// Config of `model.init`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// The architecture: `tiny`, `mini` or `small`.
    pub preset: Preset,
    /// Standard deviation of the weights (Janus-Pro's `initializer_range`: 0.02).
    #[serde(default = "default_std")]
    pub init_std: f64,
    /// The text tokenizer's size at most, special tokens included (it stops early
    /// when every word of the corpus is one token).
    #[serde(default = "default_vocab")]
    pub text_vocab_size: usize,
    /// Columns whose text the tokenizer learns from (default: the tables' prompt,
    /// prompts, rationale and caption columns).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

fn default_std() -> f64 {
    0.02
}
fn default_vocab() -> usize {
    1024
}

pub struct InitModel;

impl Stage for InitModel {
    type Config = InitConfig;
    const KIND: &'static str = "model.init";
    const VERSION: u32 = 1;
    const DOC: &'static str = "A fresh Janus-Pro model folder: a preset with seeded random weights, the image tokenizer's code vocabulary and a BPE text tokenizer learned from tables.";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "text",
            kinds: &[ArtifactKind::Table],
            schema: None,
            arity: Arity::Many,
            doc: "tables whose text the tokenizer learns from (sft_sample, rl_prompt, …)",
        },
        InputSpec {
            name: "tokenizer",
            kinds: &[ArtifactKind::Model],
            schema: None,
            arity: Arity::One,
            doc: "the image tokenizer the model will draw with (its codebook sizes the image heads)",
        },
    ];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Model));
    const USES_SEED: bool = true;

    fn validate(config: &InitConfig, _: &pipeline::Bindings) -> Result<(), String> {
        if !(config.init_std.is_finite() && config.init_std > 0.0) {
            return Err(format!("`init_std` {} must be positive", config.init_std));
        }
        if let Some(c) = &config.columns
            && c.is_empty()
        {
            return Err("`columns` is empty".into());
        }
        Ok(())
    }

    async fn run(&self, config: InitConfig, ctx: StageContext) -> Result<Output, StageError> {
        let tables = ctx.inputs("text").to_vec();
        let image_tokenizer = ctx.input("tokenizer")?.clone();
        tokio::task::spawn_blocking(move || {
            let images = crate::tokenizer::load(&image_tokenizer.dir).map_err(|e| {
                StageError::msg(e).context(format!("input `tokenizer` ({})", image_tokenizer.node))
            })?;
            let mut corpus = Vec::new();
            for table in &tables {
                let text = text::table_text(&table.dir, config.columns.as_deref())
                    .map_err(|e| StageError::msg(e).context(format!("table `{}`", table.node)))?;
                corpus.extend(text);
            }
            let tokenizer = text::learn(&corpus, config.text_vocab_size).map_err(StageError::msg)?;
            let preset = config.preset.config(0, images.codebook_size() as usize);
            let written = write_model(&ctx.out_dir, &preset, &tokenizer, config.init_std, ctx.seed)
                .map_err(StageError::msg)?;
            let l = &written.language;
            ctx.count("corpus_lines", corpus.len() as u64);
            ctx.count("text_vocab", l.vocab_size as u64);
            ctx.log(format!(
                "{:?}: {} layers × {} wide, text vocabulary {} (from {} lines), {} image codes ({}, {} per image)",
                config.preset,
                l.num_hidden_layers,
                l.hidden_size,
                l.vocab_size,
                corpus.len(),
                written.image_vocab,
                images.kind(),
                images.tokens()
            ));
            Ok(Output {
                rows: None,
                schema: None,
                meta: serde_json::json!({
                    "kind": "janus",
                    "preset": config.preset,
                    "text_vocab": l.vocab_size,
                    "image_vocab": written.image_vocab,
                    "image_tokenizer": images.kind(),
                    "image_tokens": images.tokens(),
                }),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("init thread: {e}")))?
    }
}
