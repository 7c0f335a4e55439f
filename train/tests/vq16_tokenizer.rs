//! VQ-16 as a model and as an image tokenizer: the full-size model asks for exactly the
//! checkpoint's tensors, a model folder loads through `tokenizer::load`, batched
//! encoding equals one image at a time, round trips keep shape and range, and bad
//! folders, configs and codes are refused with the reason.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use image::RgbImage;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use train::janus::vq16::{
    CHECKPOINT_PREFIX, Vq16, Vq16Config, images_to_tensor, square_image, tensor_to_images,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/janus_vq")
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

/// A weight source that records what is asked for and answers zeros (broadcast from
/// a scalar, so the full-size model costs no memory).
struct Recorder(Arc<Mutex<Vec<String>>>);

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0
            .lock()
            .unwrap()
            .push(format!("{name} {:?}", s.dims()));
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("unexpected unchecked get of {name}")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        false
    }
}

#[test]
fn the_full_size_model_asks_for_the_checkpoint_tensors() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let vb = VarBuilder::from_backend(Box::new(Recorder(asked.clone())), DType::F32, Device::Cpu);
    let config = Vq16Config::default();
    assert_eq!((config.resolution, config.tokens()), (384, 576));
    Vq16::new(config, vb.pp(CHECKPOINT_PREFIX)).unwrap();
    let mut asked = asked.lock().unwrap().clone();
    asked.sort();
    // transformers' full-size JanusVQVAE, renamed to the original layout by the script
    // (the research appendix's 344 tensors less `quantize.codebook_used`).
    let expected = std::fs::read_to_string(fixtures().join("vq16_keys.txt")).unwrap();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(asked.len(), 343);
    assert_eq!(asked, expected);
}

#[test]
fn a_model_folder_loads_as_a_tokenizer_and_round_trips() {
    let tok = train::tokenizer::load(&fixtures()).unwrap();
    assert_eq!(tok.kind(), "vq16");
    assert_eq!(
        (tok.image_size(), tok.tokens(), tok.codebook_size()),
        (32, 256, 256)
    );
    for img in images() {
        let codes = tok.encode(&img).unwrap();
        assert_eq!(codes.len(), 256);
        assert!(codes.iter().all(|&c| c < 256));
        let back = tok.decode(&codes).unwrap();
        assert_eq!(back.dimensions(), (32, 32));
        assert_eq!(tok.encode(&img).unwrap(), codes, "deterministic");
    }

    // The same at the tensor level: shapes, finite pixels.
    let vq = Vq16::load(&fixtures(), &Device::Cpu).unwrap();
    assert_eq!(vq.dtype(), DType::F32);
    let pixels = images_to_tensor(&images(), &Device::Cpu).unwrap();
    let codes = vq.encode(&pixels).unwrap();
    assert_eq!((codes.dims(), codes.dtype()), (&[3, 256][..], DType::U32));
    let decoded = vq.decode(&codes).unwrap();
    assert_eq!(decoded.dims(), &[3, 3, 32, 32]);
    let values = decoded.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    let decoded_images = vq.decode_images(&codes).unwrap();
    assert_eq!(decoded_images.len(), 3);
    assert_eq!(decoded_images, tensor_to_images(&decoded).unwrap());
}

#[test]
fn pixels_map_to_bytes_clipped_and_truncated() {
    let values = [-2.0f32, -1.0, 0.0, 0.999, 1.0, 3.0];
    // One 1×2 image: R = values[0..2], G = values[2..4], B = values[4..6].
    let t = Tensor::from_slice(&values, (1, 3, 1, 2), &Device::Cpu).unwrap();
    let img = &tensor_to_images(&t).unwrap()[0];
    assert_eq!(img.get_pixel(0, 0).0, [0, 127, 255]);
    assert_eq!(img.get_pixel(1, 0).0, [0, 254, 255]);
    // And in: 0 → −1, 255 → 1.
    let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([0, 255, (x * 255) as u8]));
    let t = images_to_tensor(&[img], &Device::Cpu).unwrap();
    assert_eq!(
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        [-1.0, -1.0, 1.0, 1.0, -1.0, 1.0]
    );
}

#[test]
fn batched_encoding_equals_one_image_at_a_time() {
    let tok = train::tokenizer::load(&fixtures()).unwrap();
    let mut imgs = images();
    // Not square, not the model's size: squared on the way in.
    imgs.push(RgbImage::from_fn(48, 40, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 6) as u8, ((x + y) * 2) as u8])
    }));
    let batched = tok.encode_batch(&imgs).unwrap();
    let single: Vec<Vec<u16>> = imgs.iter().map(|i| tok.encode(i).unwrap()).collect();
    assert_eq!(batched, single);
    assert!(tok.encode_batch(&[]).unwrap().is_empty());

    assert!(matches!(square_image(&imgs[0], 32), Cow::Borrowed(_)));
    assert_eq!(square_image(&imgs[3], 32).dimensions(), (32, 32));
}

#[test]
fn a_missing_weight_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let mut weights =
        candle_core::safetensors::load(fixtures().join("model.safetensors"), &Device::Cpu).unwrap();
    let key = "gen_vision_model.decoder.conv_blocks.1.res.0.nin_shortcut.weight";
    assert!(weights.remove(key).is_some());
    candle_core::safetensors::save(&weights, dir.path().join("model.safetensors")).unwrap();
    let err = train::tokenizer::load(dir.path()).err().unwrap();
    assert!(err.contains(key), "{err}");
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn bad_configs_and_codes_are_refused() {
    let bad = |f: fn(&mut Vq16Config)| {
        let mut c = Vq16Config::tiny();
        f(&mut c);
        c.check().unwrap_err()
    };
    assert!(bad(|c| c.ch = 48).contains("multiples of 32"));
    assert!(bad(|c| c.resolution = 33).contains("resolution"));
    assert!(bad(|c| c.codebook_size = 70_000).contains("codebook"));
    assert!(bad(|c| c.ch_mult.clear()).contains("ch_mult"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenizer.json"),
        r#"{"kind": "vq16", "config": {"chanels": 64}}"#,
    )
    .unwrap();
    let err = train::tokenizer::load(dir.path()).err().unwrap();
    assert!(err.contains("chanels"), "{err}");

    // Without a config, VQ-16's sizes: the tiny weights do not fit them.
    std::fs::write(dir.path().join("tokenizer.json"), r#"{"kind": "vq16"}"#).unwrap();
    std::fs::copy(
        fixtures().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let err = train::tokenizer::load(dir.path()).err().unwrap();
    assert!(
        err.contains("shape mismatch for gen_vision_model.quantize.embedding.weight"),
        "{err}"
    );

    let tok = train::tokenizer::load(&fixtures()).unwrap();
    assert!(tok.decode(&[0; 255]).unwrap_err().contains("255 codes"));
    let mut codes = vec![0u16; 256];
    codes[7] = 256;
    assert!(tok.decode(&codes).unwrap_err().contains("code 256"));
}
