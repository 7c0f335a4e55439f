//! The language model: transformers' `LlamaModel` as Janus-Pro's
//! `language_model.model` (DeepSeek-LLM), with the entry and exit the image path needs.
//!
//! - Input is embeddings, not ids ([`Llama::forward`]): text ids go through
//!   [`Llama::embed`], image codes through the generation aligner.
//! - Output is the hidden states after the final RMSNorm for every position; the heads
//!   (`lm_head`, `gen_head`) are applied by the caller.
//! - Batches may be padded on either side ([`Padding`]); with a [`KvCache`] the
//!   forward continues where the last one stopped.
//! - [`Ops::Fused`] runs RMSNorm, RoPE, attention and SwiGLU as our fused ops with an
//!   analytic backward ([`super::fused`]) for training and inference, on the CPU in
//!   F32. [`Ops::Composite`] builds them of ops candle differentiates (composite
//!   RMSNorm, RoPE and softmax, since candle's `rms_norm`, `rope` and
//!   `softmax_last_dim` record no gradient): training elsewhere, and the fused ops'
//!   oracle. [`Ops::Kernels`] uses those candle kernels: inference off the CPU.
//!
//! Weights: `embed_tokens.weight`, `layers.{i}.{input_layernorm, post_attention_layernorm}.weight`,
//! `layers.{i}.self_attn.{q,k,v,o}_proj.weight`, `layers.{i}.mlp.{gate,up,down}_proj.weight`,
//! `norm.weight`. Attention is grouped-query when `num_key_value_heads` is below the
//! head count (head h uses key-value head h / (heads / kv heads), as transformers'
//! `repeat_kv`); RoPE is the non-interleaved `rotate_half` form.

use super::cache::{Context, KvCache, Padding};
use super::checkpointing::Checkpointing;
use super::config::LlamaConfig;
use super::fused;
use super::lora::{LoraConfig, Proj};
use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use std::sync::Arc;

/// Which kernels the forward uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ops {
    /// Our fused ops, which record their gradient: training and inference. They have
    /// CPU F32 kernels only; elsewhere this is `Composite`.
    #[default]
    Fused,
    /// Composite ops that record their gradient: training off the CPU, the fused ops'
    /// test oracle and the benchmark's comparison.
    Composite,
    /// candle's RMSNorm, RoPE and softmax kernels, no gradient: inference.
    Kernels,
}

impl Ops {
    /// The fastest inference ops for `dtype` on `device`: ours where they run, else
    /// candle's kernels.
    pub fn inference(device: &Device, dtype: DType) -> Ops {
        match Ops::Fused.on(device, dtype) {
            Ops::Fused => Ops::Fused,
            _ => Ops::Kernels,
        }
    }

    /// What runs for tensors of `dtype` on `device`: `Fused` only on the CPU in F32.
    pub fn on(self, device: &Device, dtype: DType) -> Ops {
        match self {
            Ops::Fused if !(device.is_cpu() && dtype == DType::F32) => Ops::Composite,
            ops => ops,
        }
    }
}

/// RMSNorm in F32, scaled by the weight in the input's dtype (transformers' order).
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(RmsNorm {
            // A fresh model (no checkpoint) starts with unit weights, as transformers'.
            weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor, ops: Ops) -> Result<Tensor> {
        rms_norm(x, &self.weight, self.eps, ops)
    }
}

/// RMSNorm of x [.., H] by `weight` [H].
pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, ops: Ops) -> Result<Tensor> {
    match ops {
        Ops::Fused => fused::rms_norm::rms_norm(x, weight, eps),
        Ops::Kernels => candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps as f32),
        Ops::Composite => {
            let dtype = x.dtype();
            let x = x.to_dtype(DType::F32)?;
            let variance = x.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = x.broadcast_div(&(variance + eps)?.sqrt()?)?;
            normed.to_dtype(dtype)?.broadcast_mul(weight)
        }
    }
}

/// Cosine and sine of every position up to `max_position_embeddings`, [P, head_dim / 2] in F32.
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(config: &LlamaConfig, device: &Device) -> Result<Self> {
        let half = config.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                1.0 / config
                    .rope_theta
                    .powf(2.0 * i as f64 / config.head_dim as f64) as f32
            })
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
        let positions = Tensor::arange(0u32, config.max_position_embeddings as u32, device)?
            .to_dtype(DType::F32)?
            .unsqueeze(1)?;
        let angles = positions.broadcast_mul(&inv_freq)?;
        Ok(Rope {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// cos and sin of the context's positions as [B, T, head_dim / 2] in `dtype`.
    fn at(&self, ctx: &Context, (b, t): (usize, usize), dtype: DType) -> Result<(Tensor, Tensor)> {
        let max = self.cos.dim(0)?;
        let highest = ctx.max_position as usize;
        if highest >= max {
            candle_core::bail!("position {highest} is beyond max_position_embeddings {max}")
        }
        let pick = |table: &Tensor| -> Result<Tensor> {
            let half = table.dim(1)?;
            table
                .index_select(&ctx.positions, 0)?
                .reshape((b, t, half))?
                .to_dtype(dtype)
        };
        Ok((pick(&self.cos)?, pick(&self.sin)?))
    }
}

/// Rotate x [B, heads, T, D] by cos and sin [B, T, D / 2].
pub(crate) fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor, ops: Ops) -> Result<Tensor> {
    match ops {
        Ops::Fused => fused::rope::rope(x, cos, sin),
        Ops::Kernels => candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin),
        Ops::Composite => {
            let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
            let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
            let half = x.dim(D::Minus1)? / 2;
            let rotated = Tensor::cat(
                &[
                    &x.narrow(D::Minus1, half, half)?.neg()?,
                    &x.narrow(D::Minus1, 0, half)?,
                ],
                D::Minus1,
            )?;
            x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
        }
    }
}

fn softmax(x: &Tensor, ops: Ops) -> Result<Tensor> {
    match ops {
        // `Fused` attends in one op and never gets here.
        Ops::Kernels | Ops::Fused => candle_nn::ops::softmax_last_dim(x),
        Ops::Composite => candle_nn::ops::softmax(x, D::Minus1),
    }
}

struct Attention {
    q_proj: Proj,
    k_proj: Proj,
    v_proj: Proj,
    o_proj: Proj,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(c: &LlamaConfig, vb: VarBuilder, lora: Option<&LoraConfig>) -> Result<Self> {
        let (h, d) = (c.hidden_size, c.head_dim);
        let (q, kv) = (c.num_attention_heads * d, c.num_key_value_heads * d);
        Ok(Attention {
            q_proj: Proj::new(h, q, vb.clone(), "q_proj", lora)?,
            k_proj: Proj::new(h, kv, vb.clone(), "k_proj", lora)?,
            v_proj: Proj::new(h, kv, vb.clone(), "v_proj", lora)?,
            o_proj: Proj::new(q, h, vb, "o_proj", lora)?,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: d,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        step: &Step,
        layer: usize,
        cache: Option<&KvCache>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (d, kv) = (self.head_dim, self.kv_heads);
        let split = |y: Tensor, heads: usize| y.reshape((b, t, heads, d))?.transpose(1, 2);
        let q = split(self.q_proj.forward(x)?, self.heads)?;
        let k = split(self.k_proj.forward(x)?, kv)?;
        let v = split(self.v_proj.forward(x)?, kv)?;
        let q = apply_rope(&q, &step.cos, &step.sin, step.ops)?.contiguous()?;
        let k = apply_rope(&k, &step.cos, &step.sin, step.ops)?;
        let (k, v) = match cache {
            Some(cache) => cache.store(layer, step.ctx.offset, &k, &v)?,
            None => (k, v),
        };
        self.o_proj
            .forward(&attend(&q, &k, &v, &step.ctx.mask, step.ops)?)
    }
}

/// Causal attention of q [B, heads, T, D] over k, v [B, kv heads, keys, D] under the
/// additive `mask` [B, 1, T, keys]: [B, T, heads · D].
pub(crate) fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    ops: Ops,
) -> Result<Tensor> {
    let (b, heads, t, d) = q.dims4()?;
    let (kv, keys) = (k.dim(1)?, k.dim(2)?);
    let scale = (d as f64).powf(-0.5);
    if ops == Ops::Fused {
        return fused::attention::attention(q, k, v, mask, scale);
    }
    // Grouped queries: the heads sharing a key-value head become one batch of rows.
    let group = heads / kv;
    let q = q.contiguous()?.reshape((b, kv, group * t, d))?;
    let scores = (q.matmul(&k.contiguous()?.t()?)? * scale)?;
    let scores = scores
        .reshape((b, heads, t, keys))?
        .to_dtype(DType::F32)?
        .broadcast_add(mask)?;
    let probs = softmax(&scores, ops)?.to_dtype(q.dtype())?;
    let out = probs
        .reshape((b, kv, group * t, keys))?
        .matmul(&v.contiguous()?)?;
    out.reshape((b, heads, t, d))?
        .transpose(1, 2)?
        .reshape((b, t, heads * d))
}

struct Mlp {
    gate_proj: Proj,
    up_proj: Proj,
    down_proj: Proj,
}

impl Mlp {
    fn new(c: &LlamaConfig, vb: VarBuilder, lora: Option<&LoraConfig>) -> Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        Ok(Mlp {
            gate_proj: Proj::new(h, i, vb.clone(), "gate_proj", lora)?,
            up_proj: Proj::new(h, i, vb.clone(), "up_proj", lora)?,
            down_proj: Proj::new(i, h, vb, "down_proj", lora)?,
        })
    }

    fn forward(&self, x: &Tensor, ops: Ops) -> Result<Tensor> {
        let (gate, up) = (self.gate_proj.forward(x)?, self.up_proj.forward(x)?);
        self.down_proj.forward(&swiglu(&gate, &up, ops)?)
    }
}

/// SwiGLU's gate: silu(gate) · up.
pub(crate) fn swiglu(gate: &Tensor, up: &Tensor, ops: Ops) -> Result<Tensor> {
    match ops {
        Ops::Fused => fused::swiglu::swiglu(gate, up),
        Ops::Composite | Ops::Kernels => gate.silu()? * up,
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn new(c: &LlamaConfig, vb: VarBuilder, lora: Option<&LoraConfig>) -> Result<Self> {
        Ok(DecoderLayer {
            input_layernorm: RmsNorm::new(c.hidden_size, c.rms_norm_eps, vb.pp("input_layernorm"))?,
            self_attn: Attention::new(c, vb.pp("self_attn"), lora)?,
            post_attention_layernorm: RmsNorm::new(
                c.hidden_size,
                c.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: Mlp::new(c, vb.pp("mlp"), lora)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        step: &Step,
        layer: usize,
        cache: Option<&KvCache>,
    ) -> Result<Tensor> {
        let h = self.input_layernorm.forward(x, step.ops)?;
        let x = (x + self.self_attn.forward(&h, step, layer, cache)?)?;
        let h = self.post_attention_layernorm.forward(&x, step.ops)?;
        x + self.mlp.forward(&h, step.ops)?
    }
}

/// What every layer of one forward shares.
struct Step {
    ctx: Context,
    cos: Tensor,
    sin: Tensor,
    ops: Ops,
}

/// The language model (see the module documentation).
pub struct Llama {
    embed_tokens: Embedding,
    /// Shared with the recomputations of activation checkpointing.
    layers: Vec<Arc<DecoderLayer>>,
    norm: RmsNorm,
    rope: Rope,
    checkpointing: Option<Checkpointing>,
}

impl Llama {
    /// Build from a `VarBuilder` rooted at `language_model.model`, with LoRA adapters
    /// on the projections `lora` targets.
    pub fn new(config: &LlamaConfig, vb: VarBuilder, lora: Option<&LoraConfig>) -> Result<Self> {
        let embed_tokens =
            candle_nn::embedding(config.vocab_size, config.hidden_size, vb.pp("embed_tokens"))?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| DecoderLayer::new(config, vb.pp("layers").pp(i), lora).map(Arc::new))
            .collect::<Result<_>>()?;
        Ok(Llama {
            embed_tokens,
            layers,
            norm: RmsNorm::new(config.hidden_size, config.rms_norm_eps, vb.pp("norm"))?,
            rope: Rope::new(config, vb.device())?,
            checkpointing: None,
        })
    }

    /// Checkpoint every decoder layer ([`Checkpointing`]) in forwards that record
    /// gradients (not [`Ops::Kernels`]) without a cache; `None`: keep every activation.
    pub fn set_checkpointing(&mut self, checkpointing: Option<Checkpointing>) {
        self.checkpointing = checkpointing;
    }

    /// The token embedding table [vocab, hidden] (the text head when tied).
    pub fn embedding_table(&self) -> &Tensor {
        self.embed_tokens.embeddings()
    }

    /// Embeddings [B, T, hidden] of text ids [B, T] (u32).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.embed_tokens.forward(ids)
    }

    /// Final-norm hidden states [B, T, hidden] of `embeds` [B, T, hidden], whose
    /// positions `padding` describes. With `cache`, the tokens continue the cached
    /// sequences (and are added to them).
    pub fn forward(
        &self,
        embeds: &Tensor,
        padding: &Padding,
        cache: Option<&mut KvCache>,
        ops: Ops,
    ) -> Result<Tensor> {
        let (b, t, _) = embeds.dims3()?;
        if (padding.rows(), padding.len()) != (b, t) {
            candle_core::bail!(
                "padding describes {}×{} positions, the embeddings are {b}×{t}",
                padding.rows(),
                padding.len()
            )
        }
        let mut cache = cache;
        let ctx = match cache.as_deref_mut() {
            Some(cache) => cache.advance(padding, embeds.device())?,
            None => Context::full(padding, embeds.device())?,
        };
        let cache = cache.as_deref();
        let ops = ops.on(embeds.device(), embeds.dtype());
        let (cos, sin) = self.rope.at(&ctx, (b, t), embeds.dtype())?;
        let step = Arc::new(Step { ctx, cos, sin, ops });
        let mut x = embeds.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = match (&self.checkpointing, cache) {
                (Some(checkpointing), None) if ops != Ops::Kernels => {
                    let (layer, step) = (layer.clone(), step.clone());
                    checkpointing.apply(&x, move |x| layer.forward(x, &step, i, None))?
                }
                _ => layer.forward(&x, &step, i, cache)?,
            };
        }
        self.norm.forward(&x, ops)
    }
}
