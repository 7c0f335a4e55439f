//! CLIP's two towers in candle, inference only, as transformers' `modeling_clip.py`
//! computes them and with its tensor names: pre-norm encoder layers (attention with
//! a `head_dim^-½` scale, then an MLP), the text tower causal and pooled at the end
//! token, the vision tower a patch convolution with a class token, pooled at it, and
//! both projected without bias.

use super::config::{Activation, ClipConfig, EncoderConfig, TextConfig, VisionConfig};
use candle_core::{D, DType, IndexOp, Module, Result, Tensor};
use candle_nn::{
    Conv2d, Conv2dConfig, Embedding, LayerNorm, Linear, VarBuilder, conv2d_no_bias, embedding,
    layer_norm, linear, linear_no_bias,
};

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn new(c: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        let h = c.hidden_size;
        Ok(Attention {
            q: linear(h, h, vb.pp("q_proj"))?,
            k: linear(h, h, vb.pp("k_proj"))?,
            v: linear(h, h, vb.pp("v_proj"))?,
            out: linear(h, h, vb.pp("out_proj"))?,
            heads: c.num_attention_heads,
        })
    }

    /// `x`: (batch, tokens, hidden); `mask`: added to the scores, (tokens, tokens).
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let d = h / self.heads;
        let split = |l: &Linear| -> Result<Tensor> {
            l.forward(x)?
                .reshape((b, t, self.heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(&self.q)?, split(&self.k)?, split(&self.v)?);
        let mut scores = (q.matmul(&k.t()?)? * (d as f64).powf(-0.5))?;
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        let attn = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        self.out.forward(&y)
    }
}

struct Layer {
    attention: Attention,
    norm1: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    norm2: LayerNorm,
    act: Activation,
}

impl Layer {
    fn new(c: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        let (h, m, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        Ok(Layer {
            attention: Attention::new(c, vb.pp("self_attn"))?,
            norm1: layer_norm(h, eps, vb.pp("layer_norm1"))?,
            fc1: linear(h, m, vb.pp("mlp.fc1"))?,
            fc2: linear(m, h, vb.pp("mlp.fc2"))?,
            norm2: layer_norm(h, eps, vb.pp("layer_norm2"))?,
            act: c.hidden_act,
        })
    }

    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let x = (x + self.attention.forward(&self.norm1.forward(x)?, mask)?)?;
        let y = self.fc1.forward(&self.norm2.forward(&x)?)?;
        let y = match self.act {
            Activation::QuickGelu => (&y * candle_nn::ops::sigmoid(&(&y * 1.702)?)?)?,
            Activation::Gelu => y.gelu_erf()?,
        };
        x + self.fc2.forward(&y)?
    }
}

struct Encoder {
    layers: Vec<Layer>,
}

impl Encoder {
    fn new(c: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::new(c, vb.pp(format!("layers.{i}"))))
            .collect::<Result<_>>()?;
        Ok(Encoder { layers })
    }

    fn forward(&self, mut x: Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        for l in &self.layers {
            x = l.forward(&x, mask)?;
        }
        Ok(x)
    }
}

/// `text_model` and `text_projection`.
pub struct TextTower {
    tokens: Embedding,
    positions: Embedding,
    encoder: Encoder,
    final_norm: LayerNorm,
    projection: Linear,
}

impl TextTower {
    fn new(c: &TextConfig, projection_dim: usize, vb: VarBuilder) -> Result<Self> {
        let (h, t) = (c.encoder.hidden_size, vb.pp("text_model"));
        Ok(TextTower {
            tokens: embedding(c.vocab_size, h, t.pp("embeddings.token_embedding"))?,
            positions: embedding(
                c.max_position_embeddings,
                h,
                t.pp("embeddings.position_embedding"),
            )?,
            encoder: Encoder::new(&c.encoder, t.pp("encoder"))?,
            final_norm: layer_norm(h, c.encoder.layer_norm_eps, t.pp("final_layer_norm"))?,
            projection: linear_no_bias(h, projection_dim, vb.pp("text_projection"))?,
        })
    }

    /// The projected (not normalised) embeddings of `ids` (batch, tokens), each row
    /// pooled at its `pool` position.
    pub fn forward(&self, ids: &Tensor, pool: &[usize]) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let positions = Tensor::arange(0u32, t as u32, ids.device())?;
        let x = self
            .tokens
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        let causal: Vec<f32> = (0..t * t)
            .map(|i| {
                if i % t > i / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(causal, (t, t), ids.device())?;
        let x = self
            .final_norm
            .forward(&self.encoder.forward(x, Some(&mask))?)?;
        let at: Vec<u32> = pool
            .iter()
            .enumerate()
            .map(|(row, &p)| (row * t + p) as u32)
            .collect();
        let pooled = x
            .reshape((b * t, ()))?
            .index_select(&Tensor::new(at, ids.device())?, 0)?;
        self.projection.forward(&pooled)
    }
}

/// `vision_model` and `visual_projection`.
pub struct VisionTower {
    class: Tensor,
    patches: Conv2d,
    positions: Tensor,
    pre_norm: LayerNorm,
    encoder: Encoder,
    post_norm: LayerNorm,
    projection: Linear,
}

impl VisionTower {
    fn new(c: &VisionConfig, projection_dim: usize, vb: VarBuilder) -> Result<Self> {
        let (h, v) = (c.encoder.hidden_size, vb.pp("vision_model"));
        let e = v.pp("embeddings");
        let grid = c.image_size / c.patch_size;
        let conv = Conv2dConfig {
            stride: c.patch_size,
            ..Conv2dConfig::default()
        };
        let eps = c.encoder.layer_norm_eps;
        Ok(VisionTower {
            class: e.get(h, "class_embedding")?,
            patches: conv2d_no_bias(
                c.num_channels,
                h,
                c.patch_size,
                conv,
                e.pp("patch_embedding"),
            )?,
            positions: e.get((grid * grid + 1, h), "position_embedding.weight")?,
            pre_norm: layer_norm(h, eps, v.pp("pre_layrnorm"))?,
            encoder: Encoder::new(&c.encoder, v.pp("encoder"))?,
            post_norm: layer_norm(h, eps, v.pp("post_layernorm"))?,
            projection: linear_no_bias(h, projection_dim, vb.pp("visual_projection"))?,
        })
    }

    /// The projected (not normalised) embeddings of `pixels` (batch, channels, size, size).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let patches = self
            .patches
            .forward(pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let h = self.class.dim(0)?;
        let class = self.class.reshape((1, 1, h))?.repeat((b, 1, 1))?;
        let x = Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.positions)?;
        let x = self.encoder.forward(self.pre_norm.forward(&x)?, None)?;
        let pooled = self.post_norm.forward(&x.i((.., 0, ..))?.contiguous()?)?;
        self.projection.forward(&pooled)
    }
}

/// Both towers and `logit_scale`.
pub struct ClipModel {
    pub text: TextTower,
    pub vision: VisionTower,
    /// `logit_scale` as stored (the logits multiply by its exponential).
    pub logit_scale: f32,
}

impl ClipModel {
    /// Build from a [`VarBuilder`] over a `CLIPModel` state dict (any float dtype; the
    /// builder's dtype is what the model computes in).
    pub fn new(config: &ClipConfig, vb: VarBuilder) -> Result<Self> {
        Ok(ClipModel {
            text: TextTower::new(&config.text, config.projection_dim, vb.clone())?,
            vision: VisionTower::new(&config.vision, config.projection_dim, vb.clone())?,
            logit_scale: vb
                .get((), "logit_scale")?
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()?,
        })
    }
}

/// Rows of `x` divided by their L2 norm.
pub fn normalize(x: &Tensor) -> Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}
