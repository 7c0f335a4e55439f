//! VQ-16 against transformers' Janus VQ model: the tiny random model, images and
//! goldens that `scripts/janus_parity_vq.py` wrote into `tests/fixtures/janus_vq/`.
//! Codes must match exactly; latents and pixels within 1e-4 (max abs error, F32 on CPU).

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use train::janus::vq16::{Vq16, images_to_tensor};

const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/janus_vq")
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("golden.safetensors"), &Device::Cpu).unwrap()
}

fn images() -> Vec<RgbImage> {
    ["gradient", "shapes", "noise"]
        .iter()
        .map(|name| {
            image::open(fixtures().join(format!("images/{name}.png")))
                .unwrap()
                .to_rgb8()
        })
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    train::janus::parity::max_abs_diff(a, b).unwrap()
}

#[test]
fn encoding_matches_the_reference() {
    let vq = Vq16::load(&fixtures(), &Device::Cpu).unwrap();
    let golden = golden();
    let pixels = images_to_tensor(&images(), &Device::Cpu).unwrap();

    let latents = vq.latents(&pixels).unwrap();
    let err = max_abs_diff(&latents, &golden["latents"]);
    println!("latents: max abs error {err:.2e}");
    assert!(err <= TOLERANCE, "latents differ by {err}");

    let codes = vq.encode(&pixels).unwrap();
    let want = golden["codes"].to_dtype(DType::U32).unwrap();
    assert_eq!(
        codes.to_vec2::<u32>().unwrap(),
        want.to_vec2::<u32>().unwrap(),
        "codes differ"
    );
}

#[test]
fn decoding_matches_the_reference() {
    let vq = Vq16::load(&fixtures(), &Device::Cpu).unwrap();
    let golden = golden();
    for (codes, pixels) in [("codes", "pixels"), ("random_codes", "random_pixels")] {
        let decoded = vq.decode(&golden[codes]).unwrap();
        let err = max_abs_diff(&decoded, &golden[pixels]);
        println!("{pixels}: max abs error {err:.2e}");
        assert!(err <= TOLERANCE, "{pixels} differ by {err}");
    }
}
