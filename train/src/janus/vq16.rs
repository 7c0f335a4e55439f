//! VQ-16, Janus-Pro's image tokenizer: LlamaGen's `VQModel` as Janus ships it
//! (`janus/models/vq_model.py`), in candle. An encoder of residual blocks, stride-2
//! convolutions and single-head attention takes a square image to an h × w grid of
//! latents (h = side / 2^(levels − 1): 24 × 24 for 384² images); the quantizer
//! replaces each latent by the index of the nearest code after l2-normalising both;
//! the decoder takes the (normalised) codes back to pixels.
//!
//! Weights have the original layout's names without the `gen_vision_model.` prefix
//! (`encoder.conv_blocks.0.res.0.norm1.weight`, `quantize.embedding.weight`, …), so the
//! Janus-Pro checkpoint's `VarBuilder` rooted at `gen_vision_model` builds it
//! ([`Vq16::new`]); `quantize.codebook_used` is not needed. The decoder's `conv_blocks`
//! are stored deepest level first.
//!
//! Pixels are NCHW in [−1, 1]: images come in as `(x / 255 − 0.5) / 0.5` after their
//! shorter side is resized to the model's side and the centred square cropped
//! ([`square_image`], [`images_to_tensor`]), and go out as `clip((x + 1) / 2 · 255)`
//! truncated to bytes, as Janus' `generation_inference.py` writes them
//! ([`tensor_to_images`]).
//!
//! The networks run in the `VarBuilder`'s dtype: F32 on CPU (candle's CPU conv2d has
//! no BF16), BF16 on a GPU. The nearest-code search and the decoded pixels are F32.
//! On the CPU the 3×3 convolutions, nearly all of the work, run as banded im2col and
//! GEMM ([`conv`]); elsewhere candle's conv2d runs. A batch of images is one forward.
//!
//! Encoding follows Janus' quantizer (`codebook_l2_norm = True`): latents and codebook
//! are l2-normalised before `argmin ‖z‖² + ‖e‖² − 2 z·e`. transformers'
//! `JanusVQVAE.encode` skips that normalisation (its `decode` has it), so its codes
//! differ from Janus' for a checkpoint whose codebook rows are not unit vectors.
//!
//! As an [`ImageTokenizer`] (kind `vq16`), a model folder holds `tokenizer.json`
//! `{"kind": "vq16", "config": {…}}` (absent fields take VQ-16's values) and
//! `model.safetensors` with the `gen_vision_model.*` tensors (other tensors, such as
//! the rest of a Janus-Pro checkpoint, are ignored).

pub mod conv;
pub mod norm;

/// The largest absolute difference of two tensors (the kernels' tests).
#[cfg(test)]
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

use super::checkpoint::SAFETENSORS_SINGLE;
use crate::tokenizer::ImageTokenizer;
use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use conv::Conv;
use image::RgbImage;
use norm::Norm;
use serde::{Deserialize, Serialize};
use std::borrow::{Borrow, Cow};
use std::path::Path;

/// GroupNorm's group count throughout the model.
const GROUPS: usize = 32;
const NORM_EPS: f64 = 1e-6;
/// Where the VQ's tensors live in a Janus-Pro checkpoint (and in [`SAFETENSORS_SINGLE`]).
pub const CHECKPOINT_PREFIX: &str = "gen_vision_model";

/// The sizes of a VQ-16 model; [`Default`] is Janus-Pro's VQ-16.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Vq16Config {
    /// Codes in the codebook (16384; at most 65536: codes are u16).
    pub codebook_size: u32,
    /// Dimension of a code (8).
    pub embed_dim: usize,
    /// Base channel count (128).
    pub ch: usize,
    /// Channel multiplier of each level, shallowest first ([1, 1, 2, 2, 4]); the
    /// encoder halves the side between levels and the decoder doubles it back.
    pub ch_mult: Vec<usize>,
    /// Channels of the encoder's output and the decoder's input (256).
    pub z_channels: usize,
    /// Residual blocks per encoder level; decoder levels have one more (2).
    pub num_res_blocks: usize,
    /// Side of the square images, in pixels (384).
    pub resolution: u32,
}

impl Default for Vq16Config {
    fn default() -> Self {
        Vq16Config {
            codebook_size: 16384,
            embed_dim: 8,
            ch: 128,
            ch_mult: vec![1, 1, 2, 2, 4],
            z_channels: 256,
            num_res_blocks: 2,
            resolution: 384,
        }
    }
}

impl Vq16Config {
    /// A tiny VQ of the same architecture for tests: 32 × 32 images, 16 × 16 codes.
    /// The multipliers (2, 1) give both the encoder and the decoder a residual block
    /// that changes its channel count (`nin_shortcut`) at 32–64 channels.
    pub fn tiny() -> Self {
        Vq16Config {
            codebook_size: 256,
            embed_dim: 8,
            ch: 32,
            ch_mult: vec![2, 1],
            z_channels: 32,
            num_res_blocks: 1,
            resolution: 32,
        }
    }

    /// Side of the code grid.
    pub fn latent_side(&self) -> usize {
        let levels = self.ch_mult.len().max(1) as u32;
        (self.resolution >> (levels - 1)) as usize
    }

    /// Codes per image.
    pub fn tokens(&self) -> usize {
        self.latent_side() * self.latent_side()
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        if self.ch_mult.is_empty() || self.ch_mult.len() > 16 {
            return Err(format!(
                "ch_mult {:?} must have 1 to 16 levels",
                self.ch_mult
            ));
        }
        for channels in std::iter::once(self.ch).chain(self.ch_mult.iter().map(|m| m * self.ch)) {
            if channels == 0 || !channels.is_multiple_of(GROUPS) {
                return Err(format!(
                    "ch {} × ch_mult {:?}: channel counts must be positive multiples of {GROUPS}",
                    self.ch, self.ch_mult
                ));
            }
        }
        if self.z_channels == 0 || self.embed_dim == 0 || self.num_res_blocks == 0 {
            return Err("z_channels, embed_dim and num_res_blocks must be positive".into());
        }
        if !(1..=65536).contains(&self.codebook_size) {
            return Err(format!(
                "codebook size {} must be in 1..=65536",
                self.codebook_size
            ));
        }
        let factor = 1u32 << (self.ch_mult.len() - 1);
        if self.resolution == 0 || !self.resolution.is_multiple_of(factor) {
            return Err(format!(
                "resolution {} must be a positive multiple of {factor} (2^(levels − 1))",
                self.resolution
            ));
        }
        Ok(())
    }
}

fn group_norm(channels: usize, vb: VarBuilder) -> Result<Norm> {
    Norm::new(GROUPS, channels, NORM_EPS, vb)
}

fn conv(
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv> {
    let cfg = Conv2dConfig {
        padding,
        stride,
        ..Default::default()
    };
    let conv = candle_nn::conv2d(cin, cout, kernel, cfg, vb)?;
    Ok(Conv::new(conv, kernel, stride, padding))
}

/// norm1 → swish → conv1 → norm2 → swish → conv2, plus the input (through a 1×1
/// `nin_shortcut` when the channel count changes).
struct ResnetBlock {
    norm1: Norm,
    conv1: Conv,
    norm2: Norm,
    conv2: Conv,
    nin_shortcut: Option<Conv>,
}

impl ResnetBlock {
    fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        Ok(ResnetBlock {
            norm1: group_norm(cin, vb.pp("norm1"))?,
            conv1: conv(cin, cout, 3, 1, 1, vb.pp("conv1"))?,
            norm2: group_norm(cout, vb.pp("norm2"))?,
            conv2: conv(cout, cout, 3, 1, 1, vb.pp("conv2"))?,
            nin_shortcut: (cin != cout)
                .then(|| conv(cin, cout, 1, 1, 0, vb.pp("nin_shortcut")))
                .transpose()?,
        })
    }
}

impl Module for ResnetBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward_then(x, true)?)?;
        let h = self.conv2.forward(&self.norm2.forward_then(&h, true)?)?;
        match &self.nin_shortcut {
            Some(shortcut) => shortcut.forward(x)? + h,
            None => x + h,
        }
    }
}

/// Single-head attention over the h·w positions, with 1×1 convolutions for q, k, v
/// and the output, and a residual connection.
struct AttnBlock {
    norm: Norm,
    q: Conv,
    k: Conv,
    v: Conv,
    proj_out: Conv,
}

impl AttnBlock {
    fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let c1 = |name| conv(channels, channels, 1, 1, 0, vb.pp(name));
        Ok(AttnBlock {
            norm: group_norm(channels, vb.pp("norm"))?,
            q: c1("q")?,
            k: c1("k")?,
            v: c1("v")?,
            proj_out: c1("proj_out")?,
        })
    }
}

impl Module for AttnBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let normed = self.norm.forward_then(x, false)?;
        // [b, c, h·w] each; q as [b, h·w, c].
        let q = self.q.forward(&normed)?.reshape((b, c, h * w))?;
        let k = self.k.forward(&normed)?.reshape((b, c, h * w))?;
        let v = self.v.forward(&normed)?.reshape((b, c, h * w))?;
        let scores = (q.transpose(1, 2)?.contiguous()?.matmul(&k)? * (c as f64).powf(-0.5))?;
        // Differentiable softmax over the keys (`softmax_last_dim` has no backward).
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let attended = v
            .matmul(&weights.transpose(1, 2)?.contiguous()?)?
            .reshape((b, c, h, w))?;
        x + self.proj_out.forward(&attended)?
    }
}

/// `mid.0` residual, `mid.1` attention, `mid.2` residual.
struct Mid {
    res_1: ResnetBlock,
    attn: AttnBlock,
    res_2: ResnetBlock,
}

impl Mid {
    fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Mid {
            res_1: ResnetBlock::new(channels, channels, vb.pp("0"))?,
            attn: AttnBlock::new(channels, vb.pp("1"))?,
            res_2: ResnetBlock::new(channels, channels, vb.pp("2"))?,
        })
    }
}

impl Module for Mid {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.res_2
            .forward(&self.attn.forward(&self.res_1.forward(x)?)?)
    }
}

#[derive(Clone, Copy)]
enum Scale {
    Down,
    Up,
}

/// How a level ends: zero-pad right and bottom by one, then a stride-2 3×3 conv
/// (`downsample.conv`); or nearest ×2, then a 3×3 conv (`upsample.conv`).
struct Resample {
    scale: Scale,
    conv: Conv,
}

impl Resample {
    fn new(channels: usize, scale: Scale, vb: VarBuilder) -> Result<Self> {
        let (name, stride, padding) = match scale {
            Scale::Down => ("downsample", 2, 0),
            Scale::Up => ("upsample", 1, 1),
        };
        let conv = conv(
            channels,
            channels,
            3,
            stride,
            padding,
            vb.pp(name).pp("conv"),
        )?;
        Ok(Resample { scale, conv })
    }
}

impl Module for Resample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.scale {
            Scale::Down => self
                .conv
                .forward(&x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?),
            Scale::Up => {
                let (_, _, h, w) = x.dims4()?;
                self.conv.forward(&x.upsample_nearest2d(2 * h, 2 * w)?)
            }
        }
    }
}

/// One level (`conv_blocks.i`): residual blocks (`res.j`), each followed by attention
/// (`attn.j`) at the deepest level, then the resampling, if any.
struct ConvBlock {
    res: Vec<ResnetBlock>,
    attn: Vec<AttnBlock>,
    resample: Option<Resample>,
}

impl ConvBlock {
    fn new(
        cin: usize,
        cout: usize,
        blocks: usize,
        attention: bool,
        scale: Option<Scale>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut res = Vec::with_capacity(blocks);
        let mut attn = Vec::new();
        for j in 0..blocks {
            let block_in = if j == 0 { cin } else { cout };
            res.push(ResnetBlock::new(block_in, cout, vb.pp("res").pp(j))?);
            if attention {
                attn.push(AttnBlock::new(cout, vb.pp("attn").pp(j))?);
            }
        }
        Ok(ConvBlock {
            res,
            attn,
            resample: scale
                .map(|s| Resample::new(cout, s, vb.clone()))
                .transpose()?,
        })
    }
}

impl Module for ConvBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (j, res) in self.res.iter().enumerate() {
            h = res.forward(&h)?;
            if let Some(attn) = self.attn.get(j) {
                h = attn.forward(&h)?;
            }
        }
        match &self.resample {
            Some(resample) => resample.forward(&h),
            None => Ok(h),
        }
    }
}

/// Pixels → latents of `z_channels`: conv_in, the levels shallowest first, mid,
/// norm_out, swish, conv_out.
struct Encoder {
    conv_in: Conv,
    conv_blocks: Vec<ConvBlock>,
    mid: Mid,
    norm_out: Norm,
    conv_out: Conv,
}

impl Encoder {
    fn new(c: &Vq16Config, vb: VarBuilder) -> Result<Self> {
        let levels = c.ch_mult.len();
        let mut conv_blocks = Vec::with_capacity(levels);
        let mut block_in = c.ch;
        for (i, mult) in c.ch_mult.iter().enumerate() {
            let block_out = c.ch * mult;
            let last = i == levels - 1;
            conv_blocks.push(ConvBlock::new(
                block_in,
                block_out,
                c.num_res_blocks,
                last,
                (!last).then_some(Scale::Down),
                vb.pp("conv_blocks").pp(i),
            )?);
            block_in = block_out;
        }
        Ok(Encoder {
            conv_in: conv(3, c.ch, 3, 1, 1, vb.pp("conv_in"))?,
            conv_blocks,
            mid: Mid::new(block_in, vb.pp("mid"))?,
            norm_out: group_norm(block_in, vb.pp("norm_out"))?,
            conv_out: conv(block_in, c.z_channels, 3, 1, 1, vb.pp("conv_out"))?,
        })
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(x)?;
        for block in &self.conv_blocks {
            h = block.forward(&h)?;
        }
        let h = self.mid.forward(&h)?;
        self.conv_out
            .forward(&self.norm_out.forward_then(&h, true)?)
    }
}

/// Latents of `z_channels` → pixels: conv_in, mid, the levels deepest first
/// (`conv_blocks.0` is the deepest), norm_out, swish, conv_out.
struct Decoder {
    conv_in: Conv,
    mid: Mid,
    conv_blocks: Vec<ConvBlock>,
    norm_out: Norm,
    conv_out: Conv,
}

impl Decoder {
    fn new(c: &Vq16Config, vb: VarBuilder) -> Result<Self> {
        let levels = c.ch_mult.len();
        let deepest = c.ch * c.ch_mult[levels - 1];
        let mut conv_blocks = Vec::with_capacity(levels);
        let mut block_in = deepest;
        for (j, mult) in c.ch_mult.iter().rev().enumerate() {
            let block_out = c.ch * mult;
            conv_blocks.push(ConvBlock::new(
                block_in,
                block_out,
                c.num_res_blocks + 1,
                j == 0,
                (j != levels - 1).then_some(Scale::Up),
                vb.pp("conv_blocks").pp(j),
            )?);
            block_in = block_out;
        }
        Ok(Decoder {
            conv_in: conv(c.z_channels, deepest, 3, 1, 1, vb.pp("conv_in"))?,
            mid: Mid::new(deepest, vb.pp("mid"))?,
            conv_blocks,
            norm_out: group_norm(block_in, vb.pp("norm_out"))?,
            conv_out: conv(block_in, 3, 3, 1, 1, vb.pp("conv_out"))?,
        })
    }
}

impl Module for Decoder {
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = self.mid.forward(&self.conv_in.forward(z)?)?;
        for block in &self.conv_blocks {
            h = block.forward(&h)?;
        }
        self.conv_out
            .forward(&self.norm_out.forward_then(&h, true)?)
    }
}

/// `x / max(‖x‖, 1e-12)` along the last dimension (PyTorch's `F.normalize`).
fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    x.broadcast_div(&norm)
}

/// VQ-16: encoder, l2-normalised quantizer, decoder.
pub struct Vq16 {
    config: Vq16Config,
    encoder: Encoder,
    quant_conv: Conv,
    /// The l2-normalised codebook, F32 [codebook_size, embed_dim].
    codebook: Tensor,
    /// ‖e‖² of each normalised code, F32 [codebook_size].
    codebook_sq: Tensor,
    post_quant_conv: Conv,
    decoder: Decoder,
    dtype: DType,
    device: Device,
}

impl Vq16 {
    /// Build from weights named as in the original layout under `vb`'s root (a
    /// Janus-Pro checkpoint's `gen_vision_model`). Runs in `vb`'s dtype and device.
    pub fn new(config: Vq16Config, vb: VarBuilder) -> Result<Self> {
        config.check().map_err(candle_core::Error::msg)?;
        let codebook = vb
            .get(
                (config.codebook_size as usize, config.embed_dim),
                "quantize.embedding.weight",
            )?
            .to_dtype(DType::F32)?;
        let codebook = l2_normalize(&codebook)?;
        Ok(Vq16 {
            encoder: Encoder::new(&config, vb.pp("encoder"))?,
            quant_conv: conv(
                config.z_channels,
                config.embed_dim,
                1,
                1,
                0,
                vb.pp("quant_conv"),
            )?,
            codebook_sq: codebook.sqr()?.sum(1)?,
            codebook,
            post_quant_conv: conv(
                config.embed_dim,
                config.z_channels,
                1,
                1,
                0,
                vb.pp("post_quant_conv"),
            )?,
            decoder: Decoder::new(&config, vb.pp("decoder"))?,
            dtype: vb.dtype(),
            device: vb.device().clone(),
            config,
        })
    }

    /// Load a VQ-16 model folder (`tokenizer.json` and [`SAFETENSORS_SINGLE`], memory-mapped)
    /// onto `device`: F32 on CPU, BF16 on a GPU.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_as(dir, device, crate::janus::load::dtype_for(device))
    }

    /// [`Vq16::load`] in `dtype`.
    pub fn load_as(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let json_path = dir.join("tokenizer.json");
        let in_file = |path: &Path, e: &dyn std::fmt::Display| {
            candle_core::Error::msg(format!("{}: {e}", path.display()))
        };
        let text = std::fs::read(&json_path).map_err(|e| in_file(&json_path, &e))?;
        let json: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| in_file(&json_path, &e))?;
        if json["kind"] != "vq16" {
            return Err(in_file(
                &json_path,
                &format!("kind {} is not vq16", json["kind"]),
            ));
        }
        let config: Vq16Config = match json.get("config") {
            Some(config) => {
                serde_json::from_value(config.clone()).map_err(|e| in_file(&json_path, &e))?
            }
            None => Vq16Config::default(),
        };
        config.check().map_err(|e| in_file(&json_path, &e))?;
        let weights = dir.join(SAFETENSORS_SINGLE);
        // SAFETY: the weights file is mapped read-only and must not be modified while
        // the model is loaded (the store's artifacts are immutable).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], dtype, device) }
            .map_err(|e| in_file(&weights, &e))?;
        Vq16::new(config, vb.pp(CHECKPOINT_PREFIX)).map_err(|e| in_file(&weights, &e))
    }

    pub fn config(&self) -> &Vq16Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The latents before quantization (`quant_conv` of the encoder's output) of
    /// pixels [B, 3, S, S] in [−1, 1] (S = `resolution`): [B, embed_dim, h, w].
    pub fn latents(&self, pixels: &Tensor) -> Result<Tensor> {
        let s = self.config.resolution as usize;
        let (_, c, h, w) = pixels.dims4()?;
        if (c, h, w) != (3, s, s) {
            candle_core::bail!(
                "pixels are {:?}, VQ-16 takes [B, 3, {s}, {s}]",
                pixels.dims()
            );
        }
        let pixels = pixels.to_device(&self.device)?.to_dtype(self.dtype)?;
        let h = self.encoder.forward(&pixels)?;
        self.quant_conv.forward(&h)
    }

    /// The codes of pixels [B, 3, S, S] in [−1, 1]: U32 [B, h·w], row-major over the
    /// h × w grid.
    pub fn encode(&self, pixels: &Tensor) -> Result<Tensor> {
        let z = self.latents(pixels)?;
        let (b, e, h, w) = z.dims4()?;
        let z = z
            .to_dtype(DType::F32)?
            .permute((0, 2, 3, 1))?
            .reshape((b * h * w, e))?;
        let z = l2_normalize(&z)?;
        let distances = (z.sqr()?.sum_keepdim(1)?.broadcast_add(&self.codebook_sq)?
            - (z.matmul(&self.codebook.t()?)? * 2.0)?)?;
        distances.argmin(1)?.reshape((b, h * w))
    }

    /// The pixels of codes [B, h·w] (any integer dtype): F32 [B, 3, S, S], about
    /// [−1, 1] (the decoder does not clip).
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let (b, n) = codes.dims2()?;
        let side = self.config.latent_side();
        if n != side * side {
            candle_core::bail!("{n} codes per image; VQ-16 takes {}", side * side);
        }
        let codes = codes
            .to_device(&self.device)?
            .to_dtype(DType::U32)?
            .flatten_all()?;
        let top = codes.max(0)?.to_scalar::<u32>()?;
        if top >= self.config.codebook_size {
            candle_core::bail!(
                "code {top} is outside the codebook of {}",
                self.config.codebook_size
            );
        }
        let quant = self
            .codebook
            .index_select(&codes, 0)?
            .reshape((b, side, side, self.config.embed_dim))?
            .permute((0, 3, 1, 2))?
            .contiguous()?
            .to_dtype(self.dtype)?;
        let h = self.post_quant_conv.forward(&quant)?;
        self.decoder.forward(&h)?.to_dtype(DType::F32)
    }

    /// The codes of images of any size, encoded together (each is first squared to
    /// `resolution` by [`square_image`]).
    pub fn encode_images<I: Borrow<RgbImage>>(&self, images: &[I]) -> Result<Vec<Vec<u16>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let squares: Vec<Cow<RgbImage>> = images
            .iter()
            .map(|i| square_image(i.borrow(), self.config.resolution))
            .collect();
        let codes = self.encode(&images_to_tensor(&squares, &self.device)?)?;
        Ok(codes
            .to_vec2::<u32>()?
            .into_iter()
            .map(|row| row.into_iter().map(|c| c as u16).collect())
            .collect())
    }

    /// The images of codes [B, h·w].
    pub fn decode_images(&self, codes: &Tensor) -> Result<Vec<RgbImage>> {
        tensor_to_images(&self.decode(codes)?)
    }
}

/// The image as the model takes it: its centred square of side `min(w, h)` resized to
/// `size` × `size` (Catmull-Rom bicubic, the `image` crate's), or itself when it is
/// already that size.
pub fn square_image(img: &RgbImage, size: u32) -> Cow<'_, RgbImage> {
    let (w, h) = img.dimensions();
    if (w, h) == (size, size) {
        return Cow::Borrowed(img);
    }
    let side = w.min(h);
    let crop = image::imageops::crop_imm(img, (w - side) / 2, (h - side) / 2, side, side);
    Cow::Owned(image::imageops::resize(
        &*crop,
        size,
        size,
        image::imageops::FilterType::CatmullRom,
    ))
}

/// Images of one size as F32 pixels [B, 3, H, W] in [−1, 1]: `(x / 255 − 0.5) / 0.5`.
pub fn images_to_tensor<I: Borrow<RgbImage>>(images: &[I], device: &Device) -> Result<Tensor> {
    let Some(first) = images.first() else {
        candle_core::bail!("no images");
    };
    let (w, h) = first.borrow().dimensions();
    let plane = (w * h) as usize;
    let mut data = vec![0f32; images.len() * 3 * plane];
    for (img, out) in images.iter().zip(data.chunks_exact_mut(3 * plane)) {
        let img = img.borrow();
        if img.dimensions() != (w, h) {
            candle_core::bail!(
                "images of different sizes: {}×{} and {w}×{h}",
                img.width(),
                img.height()
            );
        }
        for (i, px) in img.pixels().enumerate() {
            for (c, &v) in px.0.iter().enumerate() {
                out[c * plane + i] = (v as f32 / 255.0 - 0.5) / 0.5;
            }
        }
    }
    Tensor::from_vec(data, (images.len(), 3, h as usize, w as usize), device)
}

/// Pixels [B, 3, H, W] (about [−1, 1]) as images: `clip((x + 1) / 2 · 255, 0, 255)`,
/// truncated to bytes as Janus' `generation_inference.py` does.
pub fn tensor_to_images(pixels: &Tensor) -> Result<Vec<RgbImage>> {
    let (_, c, h, w) = pixels.dims4()?;
    if c != 3 || h == 0 || w == 0 {
        candle_core::bail!("pixels are {:?}, images [B, 3, H, W]", pixels.dims());
    }
    let data = pixels
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let plane = h * w;
    Ok(data
        .chunks_exact(3 * plane)
        .map(|img| {
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let i = y as usize * w + x as usize;
                image::Rgb(
                    [0, 1, 2].map(|c| {
                        ((img[c * plane + i] + 1.0) / 2.0 * 255.0).clamp(0.0, 255.0) as u8
                    }),
                )
            })
        })
        .collect())
}

impl ImageTokenizer for Vq16 {
    fn kind(&self) -> &'static str {
        "vq16"
    }

    fn image_size(&self) -> u32 {
        self.config.resolution
    }

    fn tokens(&self) -> usize {
        self.config.tokens()
    }

    fn codebook_size(&self) -> u32 {
        self.config.codebook_size
    }

    fn batch_size(&self) -> usize {
        if self.device.is_cpu() { 2 } else { 16 }
    }

    fn encode(&self, img: &RgbImage) -> std::result::Result<Vec<u16>, String> {
        self.encode_images(std::slice::from_ref(img))
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or_else(|| "no codes".to_string())
    }

    fn encode_batch(&self, images: &[RgbImage]) -> std::result::Result<Vec<Vec<u16>>, String> {
        self.encode_images(images).map_err(|e| e.to_string())
    }

    fn decode(&self, codes: &[u16]) -> std::result::Result<RgbImage, String> {
        let codes: Vec<u32> = codes.iter().map(|&c| c as u32).collect();
        let n = codes.len();
        Tensor::from_vec(codes, (1, n), &self.device)
            .and_then(|t| self.decode_images(&t))
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or_else(|| "no image".to_string())
    }
}
