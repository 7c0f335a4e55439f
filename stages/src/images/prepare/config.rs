//! The config of `images.prepare`, its defaults and checks, and the settings of
//! [`datasets::images::prepare`] it makes.

use datasets::images::{Encoding, Limits, Settings};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The encoding of prepared images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    #[default]
    Jpeg,
    Png,
}

/// Config of `images.prepare`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrepareConfig {
    /// Side of the square images written, in pixels (Janus-Pro: 384).
    #[serde(default = "default_size")]
    pub size: u32,
    /// `jpeg` or `png`.
    #[serde(default)]
    pub format: ImageFormat,
    /// JPEG quality, 1 to 100.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Keep JPEG chroma at full resolution (4:4:4) rather than 4:2:0 (Pillow's default).
    #[serde(default)]
    pub full_chroma: bool,
    /// Images whose shorter side is under this many pixels are quarantined.
    #[serde(default = "default_min_side")]
    pub min_side: u32,
    /// Images whose longer side is over this many pixels are quarantined.
    #[serde(default = "default_max_side")]
    pub max_side: u32,
    /// Images whose header declares more pixels than this are quarantined before
    /// decoding (decompression bombs); the default is Pillow's `MAX_IMAGE_PIXELS`.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// Images whose longer side is more than this many times the shorter are
    /// quarantined (the centre crop would keep too little of them).
    #[serde(default = "default_max_aspect")]
    pub max_aspect: f64,
    /// Decode JPEGs at 1/2, 1/4 or 1/8 of their size in the DCT when the shorter side
    /// still reaches `size` (as Pillow's `draft`): much faster on large photos, within a
    /// few levels of a full decode.
    #[serde(default = "yes")]
    pub dct_scaling: bool,
    /// Quarantine images whose file name claims another format than their bytes are
    /// (by default they are decoded as what they are, and counted as
    /// `mislabelled_converted`).
    #[serde(default)]
    pub reject_mislabelled: bool,
    /// Threads to prepare images with (at most what the run grants).
    #[serde(default)]
    pub threads: Option<u32>,
}

fn default_size() -> u32 {
    384
}
fn default_quality() -> u8 {
    95
}
fn default_min_side() -> u32 {
    64
}
fn default_max_side() -> u32 {
    16384
}
fn default_max_pixels() -> u64 {
    // Pillow's `Image.MAX_IMAGE_PIXELS`: 1024 × 1024 × 1024 / 4 / 3.
    89_478_485
}
fn default_max_aspect() -> f64 {
    3.0
}
fn yes() -> bool {
    true
}

impl Default for PrepareConfig {
    fn default() -> Self {
        PrepareConfig {
            size: default_size(),
            format: ImageFormat::default(),
            quality: default_quality(),
            full_chroma: false,
            min_side: default_min_side(),
            max_side: default_max_side(),
            max_pixels: default_max_pixels(),
            max_aspect: default_max_aspect(),
            dct_scaling: true,
            reject_mislabelled: false,
            threads: None,
        }
    }
}

impl PrepareConfig {
    /// The checks serde cannot make.
    pub(super) fn check(&self) -> Result<(), String> {
        if !(1..=8192).contains(&self.size) {
            return Err(format!("`size` must be 1 to 8192, not {}", self.size));
        }
        if !(1..=100).contains(&self.quality) {
            return Err(format!("`quality` must be 1 to 100, not {}", self.quality));
        }
        if self.min_side > self.max_side {
            return Err(format!(
                "`min_side` ({}) is over `max_side` ({})",
                self.min_side, self.max_side
            ));
        }
        if self.max_aspect.is_nan() || self.max_aspect < 1.0 {
            return Err(format!(
                "`max_aspect` must be at least 1, not {}",
                self.max_aspect
            ));
        }
        Ok(())
    }

    /// The settings of [`datasets::images::prepare`].
    pub fn settings(&self) -> Settings {
        Settings {
            size: self.size,
            encoding: match self.format {
                ImageFormat::Png => Encoding::Png,
                ImageFormat::Jpeg => Encoding::Jpeg {
                    quality: self.quality,
                    full_chroma: self.full_chroma,
                },
            },
            limits: Limits {
                min_side: self.min_side,
                max_side: self.max_side,
                max_pixels: self.max_pixels,
                max_aspect: self.max_aspect,
            },
            dct_scaling: self.dct_scaling,
            reject_mislabelled: self.reject_mislabelled,
        }
    }
}
