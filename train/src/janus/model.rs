//! Janus-Pro's generation path (DeepSeek's `MultiModalityCausalLM`, less the
//! understanding encoder): the language model with its text head, and the three
//! image-generation modules. Weight names mirror the original layout:
//!
//! - `language_model.model.*`: [`Llama`]; `language_model.lm_head.weight`: the text
//!   head (bias-free; `embed_tokens` when the checkpoint has none and the config ties).
//! - `gen_embed.weight` [image vocab, code dim]: image codes → vectors (its own table,
//!   not the VQ's codebook).
//! - `gen_aligner.layers.{0, 2, …}`: Linear, then GELU (erf) and Linear per further layer;
//!   code vectors → LLM embeddings.
//! - `gen_head.output_mlp_projector`, `gen_head.vision_head`: Linear, GELU (erf),
//!   Linear, both with biases; hidden states → image logits.
//!
//! The VQ (`gen_vision_model.*`) is built on its own, from the same checkpoint
//! ([`crate::janus::load`]), because a model may draw with another image tokenizer.

use super::cache::{KvCache, Padding};
use super::checkpointing::Checkpointing;
use super::config::JanusConfig;
use super::llama::{Llama, Ops};
use super::lora::LoraConfig;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, linear, linear_no_bias};

/// Linear layers with exact (erf) GELU between them.
struct GeluMlp {
    layers: Vec<Linear>,
}

impl Module for GeluMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.layers[0].forward(x)?;
        for layer in &self.layers[1..] {
            x = layer.forward(&x.gelu_erf()?)?;
        }
        Ok(x)
    }
}

/// The model (see the module documentation).
pub struct Janus {
    language_model: Llama,
    lm_head: Linear,
    gen_embed: Embedding,
    gen_aligner: GeluMlp,
    gen_head: GeluMlp,
    config: JanusConfig,
}

impl Janus {
    /// Build from a `VarBuilder` in the original layout (root of the checkpoint).
    pub fn new(config: &JanusConfig, vb: VarBuilder) -> Result<Self> {
        Self::with_lora(config, vb, None)
    }

    /// [`Janus::new`], with LoRA adapters on the decoder projections `lora` targets.
    pub fn with_lora(
        config: &JanusConfig,
        vb: VarBuilder,
        lora: Option<&LoraConfig>,
    ) -> Result<Self> {
        let l = &config.language;
        let h = l.hidden_size;
        let lm = vb.pp("language_model");
        let language_model = Llama::new(l, lm.pp("model"), lora)?;
        let lm_head = if lm.contains_tensor("lm_head.weight") || !l.tie_word_embeddings {
            linear_no_bias(h, l.vocab_size, lm.pp("lm_head"))?
        } else {
            Linear::new(language_model.embedding_table().clone(), None)
        };
        let aligner = vb.pp("gen_aligner").pp("layers");
        let mut aligner_layers = vec![linear(config.code_dim, h, aligner.pp(0))?];
        for i in 1..config.aligner_depth {
            aligner_layers.push(linear(h, h, aligner.pp(2 * i))?);
        }
        let head = vb.pp("gen_head");
        Ok(Janus {
            language_model,
            lm_head,
            gen_embed: candle_nn::embedding(
                config.image_vocab,
                config.code_dim,
                vb.pp("gen_embed"),
            )?,
            gen_aligner: GeluMlp {
                layers: aligner_layers,
            },
            gen_head: GeluMlp {
                layers: vec![
                    linear(h, config.head_embed, head.pp("output_mlp_projector"))?,
                    linear(
                        config.head_embed,
                        config.image_vocab,
                        head.pp("vision_head"),
                    )?,
                ],
            },
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &JanusConfig {
        &self.config
    }

    pub fn dtype(&self) -> DType {
        self.language_model.embedding_table().dtype()
    }

    pub fn device(&self) -> &candle_core::Device {
        self.language_model.embedding_table().device()
    }

    /// Embeddings [B, T, H] of text ids [B, T].
    pub fn embed_text(&self, ids: &Tensor) -> Result<Tensor> {
        self.language_model.embed(ids)
    }

    /// Embeddings [B, T, H] of image codes [B, T]: `gen_aligner(gen_embed(codes))`.
    pub fn embed_image(&self, codes: &Tensor) -> Result<Tensor> {
        self.gen_aligner.forward(&self.gen_embed.forward(codes)?)
    }

    /// Embeddings of a sequence mixing both: `ids` [B, T] holds a text id, or an image
    /// code where `is_image` [B, T] (u8) is 1.
    pub fn embed_mixed(&self, ids: &Tensor, is_image: &Tensor) -> Result<Tensor> {
        let zeros = ids.zeros_like()?;
        let text = self.embed_text(&is_image.where_cond(&zeros, ids)?)?;
        let image = self.embed_image(&is_image.where_cond(ids, &zeros)?)?;
        let mask = is_image.unsqueeze(2)?.broadcast_as(text.shape())?;
        mask.where_cond(&image, &text)
    }

    /// Final-norm hidden states [B, T, H] (see [`Llama::forward`]).
    pub fn forward(
        &self,
        embeds: &Tensor,
        padding: &Padding,
        cache: Option<&mut KvCache>,
        ops: Ops,
    ) -> Result<Tensor> {
        self.language_model.forward(embeds, padding, cache, ops)
    }

    /// Checkpoint every decoder layer in training forwards (see [`Llama::set_checkpointing`]).
    pub fn set_checkpointing(&mut self, checkpointing: Option<Checkpointing>) {
        self.language_model.set_checkpointing(checkpointing);
    }

    /// Text logits of hidden states (`lm_head`).
    pub fn text_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }

    /// Image logits of hidden states (`gen_head`).
    pub fn image_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.gen_head.forward(hidden)
    }

    /// An empty cache for `rows` sequences of up to `capacity` positions.
    pub fn cache(&self, rows: usize, capacity: usize) -> Result<KvCache> {
        KvCache::new(
            &self.config.language,
            rows,
            capacity,
            self.dtype(),
            self.device(),
        )
    }
}
