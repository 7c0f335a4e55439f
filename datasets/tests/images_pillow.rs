//! Preparation matches Pillow. `scripts/pillow_fixtures.py` wrote small inputs and what
//! Pillow 13 makes of them (alpha on white, RGB, EXIF orientation, then
//! `resize((s, s), BICUBIC, box=centred square)`), into `tests/data/pillow/`; here the
//! same inputs are prepared (PNG out, so lossless) and compared channel by channel.
//!
//! Tolerances, in 8-bit levels (max |ours − Pillow| / mean |ours − Pillow|, per channel;
//! measured with Pillow 13.0.0 in brackets):
//! - PNG inputs, where decoding is exact, so this is the resize alone (the fixed-point
//!   rounding of two convolutions): at most 1 / 0.05 [1 / 0.014];
//! - JPEG inputs decoded in full (RGB, EXIF-rotated: zune-jpeg; CMYK: jpeg-decoder): at
//!   most 4 / 0.6 [4 / 0.53] (zune-jpeg and libjpeg-turbo round the IDCT and the colour
//!   conversion differently; jpeg-decoder, used for all of them before, gave 3 / 0.16);
//! - a JPEG decoded at 1/4 in the DCT, against Pillow's full decode: at most 40 / 2.0
//!   [36 / 1.9]. Reducing in the DCT is not the bicubic filter, and jpeg-decoder
//!   upsamples chroma where libjpeg scales it in the IDCT: on this saturated, hard-edged
//!   fixture Pillow's own `draft` differs from its full decode by 5 / 0.45; on real
//!   photographs at 384 (scikit-image's) both differ from the full decode alike,
//!   ours by 16-50 / 0.5-1.3, Pillow's `draft` by 11-48 / 0.4-1.2.

use datasets::images::{Encoding, Limits, Settings, prepare};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/pillow")
}

/// Max and mean absolute difference per channel.
fn difference(ours: &[u8], pillow: &[u8]) -> [(u8, f64); 3] {
    let mut out = [(0u8, 0.0f64); 3];
    for (c, slot) in out.iter_mut().enumerate() {
        let diffs: Vec<u8> = ours
            .iter()
            .zip(pillow)
            .skip(c)
            .step_by(3)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        *slot = (
            diffs.iter().copied().max().unwrap_or(0),
            diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64,
        );
    }
    out
}

#[test]
fn prepared_images_match_pillow_within_the_stated_tolerance() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("manifest.json")).unwrap()).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let input = case["input"].as_str().unwrap();
        let size = case["size"].as_u64().unwrap() as u32;
        let dct_scaling = case["dct_scaling"].as_bool().unwrap();
        let settings = Settings {
            size,
            encoding: Encoding::Png,
            limits: Limits {
                min_side: 1,
                max_side: 10_000,
                max_pixels: 1 << 30,
                max_aspect: 10.0,
            },
            dct_scaling,
            reject_mislabelled: true,
        };
        let bytes = std::fs::read(fixtures().join(input)).unwrap();
        let prepared = prepare(&bytes, Some(input), &settings).unwrap();
        let ours = image::load_from_memory(&prepared.bytes).unwrap().to_rgb8();
        let pillow = image::open(fixtures().join(case["pillow"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        assert_eq!(ours.dimensions(), (size, size), "{name}");
        assert_eq!(pillow.dimensions(), (size, size), "{name}");
        let (max_tol, mean_tol) = match (input.ends_with(".jpg"), dct_scaling) {
            (false, _) => (1, 0.05),
            (true, false) => (4, 0.6),
            (true, true) => (40, 2.0),
        };
        let diff = difference(ours.as_raw(), pillow.as_raw());
        println!(
            "{name:>13}: {diff:.3?} (max, mean) per channel; tolerance {max_tol} / {mean_tol}"
        );
        if diff
            .iter()
            .any(|&(max, mean)| max > max_tol || mean > mean_tol)
        {
            failures.push(format!("{name}: {diff:?} over {max_tol} / {mean_tol}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
