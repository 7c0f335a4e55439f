//! The Rust CLIP against `tests/data/tiny_clip/`: tiny random weights and the golden
//! outputs of the numpy reference forward that `scripts/make_tiny_clip.py` wrote.

use super::*;
use candle_core::Device;
use serde_json::Value;
use std::collections::HashMap;

pub(crate) fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_clip")
}

fn golden() -> (Value, HashMap<String, Tensor>) {
    let dir = tiny_dir();
    let json = serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu).unwrap();
    (json, tensors)
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

/// Within 1e-5: float32 here against float64 there differ by ~2e-7; the tanh GELU in
/// place of the exact one moves the image embeddings by 9e-5.
fn assert_close(ours: &[Vec<f32>], golden: &[Vec<f32>], what: &str) {
    assert_eq!(ours.len(), golden.len(), "{what}: rows");
    for (i, (a, b)) in ours.iter().zip(golden).enumerate() {
        assert_eq!(a.len(), b.len(), "{what} row {i}: length");
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-5, "{what}[{i}][{j}]: {x} vs {y}");
        }
    }
}

fn png(name: &str) -> RgbImage {
    image::open(tiny_dir().join(name)).unwrap().to_rgb8()
}

/// The golden crops (what Pillow's resize and the centre crop gave), one per image.
fn golden_crops(tensors: &HashMap<String, Tensor>) -> Vec<RgbImage> {
    let pixels = &tensors["pixels"];
    let (n, h, w, _) = pixels.dims4().unwrap();
    (0..n)
        .map(|i| {
            let raw = pixels
                .get(i)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<u8>()
                .unwrap();
            RgbImage::from_raw(w as u32, h as u32, raw).unwrap()
        })
        .collect()
}

#[test]
fn token_ids_match_the_reference_bpe_with_truncation() {
    let (json, _) = golden();
    let clip = Clip::load(&tiny_dir(), &Device::Cpu).unwrap();
    let prompts = json["prompts"].as_array().unwrap();
    for (p, want) in prompts.iter().zip(json["input_ids"].as_array().unwrap()) {
        let want: Vec<u32> = serde_json::from_value(want.clone()).unwrap();
        assert_eq!(clip.token_ids(p.as_str().unwrap()).unwrap(), want, "{p}");
    }
    // The long prompt is cut to the 16 positions, its end token kept.
    let last = clip.token_ids(prompts[3].as_str().unwrap()).unwrap();
    assert_eq!(last.len(), clip.config().text.max_position_embeddings);
    assert_eq!(
        *last.last().unwrap(),
        clip.config().text.vocab_size as u32 - 1
    );
}

#[test]
fn embeddings_and_similarities_match_the_numpy_reference() {
    let (json, tensors) = golden();
    let clip = Clip::load(&tiny_dir(), &Device::Cpu).unwrap();
    let prompts: Vec<&str> = json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    // All prompts at once (padded to the longest) and one at a time agree.
    let texts = clip.text_embeddings(&prompts).unwrap();
    assert_close(
        &rows(&texts),
        &rows(&tensors["text_embeds"]),
        "text embeddings",
    );
    let alone = clip.text_embeddings(&prompts[1..2]).unwrap();
    assert_close(
        &rows(&alone),
        &rows(&tensors["text_embeds"])[1..2],
        "one text",
    );
    let images = clip.crop_embeddings(&golden_crops(&tensors)).unwrap();
    assert_close(
        &rows(&images),
        &rows(&tensors["image_embeds"]),
        "image embeddings",
    );
    let sims = cosine(&images, &texts).unwrap();
    assert_close(&sims, &rows(&tensors["cosine"]), "cosine similarities");
    let scale = json["logit_scale"].as_f64().unwrap() as f32;
    assert!((clip.logit_scale() - scale).abs() < 1e-6);
}

#[test]
fn image_preparation_matches_pillow() {
    let (json, tensors) = golden();
    let clip = Clip::load(&tiny_dir(), &Device::Cpu).unwrap();
    let crops = golden_crops(&tensors);
    let names = json["images"].as_array().unwrap();
    for (name, want) in names.iter().zip(&crops) {
        let name = name.as_str().unwrap();
        let ours = preprocess::resized_crop(&png(name), 32).unwrap();
        let worst = ours
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        // Pillow and `datasets::images::resize` round the fixed-point convolutions
        // alike but for a level here and there; at the model's size nothing is resized.
        let square = name.starts_with("square");
        assert!(
            worst <= u8::from(!square),
            "{name}: {worst} levels from Pillow"
        );
    }
    // The whole path, PNG to embedding, where no resize is involved.
    let images: Vec<RgbImage> = names[..2]
        .iter()
        .map(|n| png(n.as_str().unwrap()))
        .collect();
    let ours = clip.image_embeddings(&images).unwrap();
    assert_close(
        &rows(&ours),
        &rows(&tensors["image_embeds"])[..2],
        "PNG images",
    );
}

#[test]
fn pooling_follows_transformers_for_legacy_and_current_configs() {
    // Legacy eos_token_id 2: the first largest id.
    assert_eq!(pool_position(&[9, 4, 12, 3, 12, 0], 2), 2);
    // Otherwise the first eos_token_id, even when a larger id precedes it.
    assert_eq!(pool_position(&[9, 40, 12, 3, 12], 12), 2);
    // No end token at all: position 0, as argmax over zeros.
    assert_eq!(pool_position(&[9, 4], 12), 0);
}

/// A copy of the tiny folder in a temporary directory.
fn copy_of_tiny() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in FILES {
        std::fs::copy(tiny_dir().join(f), tmp.path().join(f)).unwrap();
    }
    tmp
}

fn load_error(dir: &Path) -> String {
    match Clip::load(dir, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_file_or_a_wrong_tensor_name_is_named() {
    let tmp = copy_of_tiny();
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    let e = load_error(tmp.path());
    assert!(e.contains("tokenizer.json: not found"), "{e}");

    let tmp = copy_of_tiny();
    let weights = tmp.path().join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let t = tensors.remove("vision_model.pre_layrnorm.weight").unwrap();
    tensors.insert("vision_model.pre_layernorm.weight".into(), t);
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let e = load_error(tmp.path());
    assert!(
        e.contains("model.safetensors") && e.contains("vision_model.pre_layrnorm.weight"),
        "{e}"
    );

    let tmp = copy_of_tiny();
    let config = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"clip\"", "\"siglip\"")).unwrap();
    let e = load_error(tmp.path());
    assert!(e.contains("config.json") && e.contains("siglip"), "{e}");
}
