//! One image, start to end: probe the header, decode (reduced in the DCT where the
//! target allows), orient, composite alpha on white, crop the centred square and
//! resize it, expand grey to RGB, and encode. A decoder that panics on hostile bytes is caught and the image rejected as
//! corrupt, so one bad file never stops a run.

use super::color::{flatten, grey_to_rgb};
use super::decode::decode;
use super::encode::{Encoding, encode};
use super::probe::{Header, Limits, probe};
use super::reason::{Reason, Rejection};
use super::resize::square;
use sha2::{Digest, Sha256};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// How images are prepared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Side of the square output, in pixels.
    pub size: u32,
    pub encoding: Encoding,
    pub limits: Limits,
    /// Decode JPEGs at 1/2, 1/4 or 1/8 scale when the shorter side stays at least
    /// `size` (Pillow's `draft`).
    pub dct_scaling: bool,
    /// Reject images whose name claims another format than their bytes are (by default
    /// they are decoded by what the bytes are, as browsers and Pillow do).
    pub reject_mislabelled: bool,
}

/// A prepared image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The encoded square.
    pub bytes: Vec<u8>,
    /// What the original's header said.
    pub header: Header,
    /// The original's EXIF orientation (1: upright), already applied.
    pub orientation: u8,
    /// SHA-256 of the original bytes, in hex.
    pub sha256: String,
}

/// Why an image was not prepared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The image is bad: it goes to quarantine.
    Rejected(Rejection),
    /// Encoding failed: not the image's fault, but the settings' or ours.
    Encoder(String),
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        Failure::Rejected(r)
    }
}

/// SHA-256 of `bytes` in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a caught panic said.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Prepare the image `bytes` (named `name`, if known) as `settings` say.
pub fn prepare(bytes: &[u8], name: Option<&str>, settings: &Settings) -> Result<Prepared, Failure> {
    let header = probe(bytes, name, &settings.limits, settings.reject_mislabelled)?;
    let scale_to = settings.dct_scaling.then_some(settings.size);
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        decode(bytes, &header, scale_to, settings.limits.max_pixels)
    }))
    .map_err(|panic| {
        Rejection::new(
            Reason::Corrupt,
            format!(
                "the {} decoder gave up: {}",
                header.format,
                panic_text(&*panic)
            ),
        )
    })??;
    let flat = flatten(decoded.image);
    let grey = flat.color().channel_count() == 1;
    let pixels = square(&flat, settings.size).map_err(Failure::Encoder)?;
    let rgb = if grey { grey_to_rgb(&pixels) } else { pixels };
    let bytes_out = encode(&rgb, settings.size, settings.encoding).map_err(Failure::Encoder)?;
    Ok(Prepared {
        bytes: bytes_out,
        header,
        orientation: decoded.orientation.to_exif(),
        sha256: sha256_hex(bytes),
    })
}
