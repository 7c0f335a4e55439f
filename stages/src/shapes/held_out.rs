//! The `held_out` config key of the shapes stages: which compositions training leaves
//! out (`datasets::shapes::split` has the presets and why there are two).

use datasets::shapes::HeldOut;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which compositions are kept out of training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeldOutPreset {
    /// Color–shape pairs (a red square) and relation–shape pairs (a circle above).
    #[default]
    Standard,
    /// Bindings of two colored shapes and relations between two given shapes (a circle
    /// above a triangle); every colored shape is seen alone, every shape in every
    /// relation with other shapes.
    Bindings,
    /// Nothing: for a tokenizer's corpus, which must know how everything looks.
    None,
}

impl HeldOutPreset {
    /// The held-out compositions of this preset.
    pub fn held_out(self) -> HeldOut {
        match self {
            HeldOutPreset::Standard => HeldOut::standard(),
            HeldOutPreset::Bindings => HeldOut::bindings(),
            HeldOutPreset::None => HeldOut::default(),
        }
    }

    /// Serde's `skip_serializing_if`: the default is left out of configs (and keys).
    pub fn is_default(&self) -> bool {
        *self == HeldOutPreset::default()
    }
}
