//! LoRA on the decoder's projections: the settings ([`LoraConfig`]) and the projection
//! module the layers are built with ([`Proj`]).
//!
//! A targeted projection computes `W x + (alpha / rank) · B A x`, A [rank, in] and
//! B [out, rank] being trainable and W frozen. A projection whose weight records no
//! gradient (a frozen base, targeted or not) multiplies through a [`detour`] whose
//! backward computes only `dy W`: candle's matmul rule would also compute `xᵀ dy`, the
//! weight's gradient, for a tensor that has no use for it (a full weight-sized
//! gradient per projection). Which weights are frozen, and the adapters' values, are
//! the parameters' business ([`crate::core::lora`]); here the model asks its
//! `VarBuilder` for `{module}.weight`, `{module}.lora_A.weight` and
//! `{module}.lora_B.weight` (PEFT's names, less its `base_model.model.` prefix).

use super::detour::detour;
use candle_core::{Module, Result, Tensor};
use candle_nn::init::DEFAULT_KAIMING_NORMAL;
use candle_nn::{Init, Linear, VarBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The projections LoRA may target, by their module names.
pub const MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// `lora = { rank, alpha, target_modules, seed }`: train low-rank adapters on the
/// decoder's projections, everything else frozen (the heads, embeddings and norms
/// included). No dropout on the adapters' input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    pub rank: usize,
    /// The update is scaled by alpha / rank.
    pub alpha: f64,
    /// Default: all seven projections of each layer.
    #[serde(default = "all_modules")]
    pub target_modules: Vec<String>,
    /// Seed of A's initial values (B starts at zero).
    #[serde(default)]
    pub seed: u64,
}

fn all_modules() -> Vec<String> {
    MODULES.iter().map(|m| m.to_string()).collect()
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    pub fn targets(&self, module: &str) -> bool {
        self.target_modules.iter().any(|m| m == module)
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        if self.rank == 0 {
            return Err("lora.rank must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(format!("lora.alpha {} must be positive", self.alpha));
        }
        if self.target_modules.is_empty() {
            return Err("lora.target_modules is empty".into());
        }
        match self
            .target_modules
            .iter()
            .find(|m| !MODULES.contains(&m.as_str()))
        {
            Some(m) => Err(format!(
                "lora.target_modules: `{m}` is none of {}",
                MODULES.join(", ")
            )),
            None => Ok(()),
        }
    }
}

/// A bias-free projection of the decoder.
pub enum Proj {
    /// A trainable weight.
    Full(Linear),
    /// A frozen weight, without adapters.
    Frozen(Linear),
    /// A frozen weight with trainable adapters.
    Lora {
        base: Linear,
        a: Linear,
        b: Linear,
        scale: f64,
    },
}

impl Proj {
    /// The projection `{module}` of `vb` from `in_dim` to `out_dim`, with adapters when
    /// `lora` targets `module` (named by its last part, e.g. `q_proj`).
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        vb: VarBuilder,
        module: &str,
        lora: Option<&LoraConfig>,
    ) -> Result<Proj> {
        let vb = vb.pp(module);
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", DEFAULT_KAIMING_NORMAL)?;
        let frozen = !weight.track_op();
        let base = Linear::new(weight, None);
        Ok(match lora.filter(|l| l.targets(module)) {
            None if frozen => Proj::Frozen(base),
            None => Proj::Full(base),
            Some(_) if !frozen => {
                candle_core::bail!("`{}.weight` has adapters but is trainable", vb.prefix())
            }
            Some(lora) => {
                // PEFT's initialisation: A uniform in ±1 / √in, B zero (the update
                // starts at zero).
                let bound = 1.0 / (in_dim as f64).sqrt();
                let a = vb.get_with_hints(
                    (lora.rank, in_dim),
                    "lora_A.weight",
                    Init::Uniform {
                        lo: -bound,
                        up: bound,
                    },
                )?;
                let b =
                    vb.get_with_hints((out_dim, lora.rank), "lora_B.weight", Init::Const(0.0))?;
                Proj::Lora {
                    base,
                    a: Linear::new(a, None),
                    b: Linear::new(b, None),
                    scale: lora.scale(),
                }
            }
        })
    }
}

/// `base(x)` for a frozen base, with only x's gradient (`dy W`).
fn frozen(base: &Linear, x: &Tensor) -> Result<Tensor> {
    let y = base.forward(&x.detach())?;
    let back = Linear::new(base.weight().t()?, None);
    detour(x, y, move |_, dy| back.forward(dy))
}

impl Module for Proj {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Proj::Full(linear) => linear.forward(x),
            Proj::Frozen(base) => frozen(base, x),
            Proj::Lora { base, a, b, scale } => {
                // The scale goes on B [out, rank], not on the [.., out] update, so the
                // graph keeps one activation fewer.
                let b = Linear::new((b.weight() * *scale)?, None);
                frozen(base, x)? + b.forward(&a.forward(x)?)?
            }
        }
    }
}
