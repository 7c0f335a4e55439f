//! `model.init`'s work: a fresh model folder for a preset, its image heads sized by a
//! patch VQ's codebook and its text tokenizer learned from a table, loads back into
//! our loader and draws through the patch VQ; a table without text is refused by name.

use datasets::table::{ShardOptions, ShardWriter};
use image::RgbImage;
use pipeline::Digest;
use schemas::Row;
use schemas::rl_prompt::RlPrompt;
use std::path::Path;
use std::sync::Arc;
use train::init::{text, write_model};
use train::janus::draw::GenerateConfig;
use train::janus::load::{DeviceChoice, load};
use train::patch_vq::{PatchVq, PatchVqConfig, TrainOptions};
use train::stages::generate::{Job, ModelInput, write_generations};
use train::stages::init::Preset;

fn prompts(dir: &Path, texts: &[&str]) {
    let rows: Vec<RlPrompt> = texts
        .iter()
        .enumerate()
        .map(|(i, p)| RlPrompt {
            id: format!("p{i}"),
            prompt: p.to_string(),
            family: "shapes".into(),
            tag: Some("colors".into()),
            metadata: None,
        })
        .collect();
    let mut writer = ShardWriter::new(
        dir,
        Arc::new(RlPrompt::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    writer.write(&schemas::to_batch(&rows).unwrap()).unwrap();
    writer.finish().unwrap();
}

fn patch_vq(dir: &Path) {
    let images: Vec<RgbImage> = (0..4u8)
        .map(|i| {
            RgbImage::from_fn(32, 32, |x, y| {
                image::Rgb([x as u8 * 8, y as u8 * 8, i * 60])
            })
        })
        .collect();
    let vq = PatchVq::train(
        &images,
        &TrainOptions {
            config: PatchVqConfig {
                image_size: 32,
                patch: 4,
                codebook_size: 48,
            },
            samples: 1000,
            iterations: 2,
            seed: 1,
        },
    )
    .unwrap();
    vq.save(dir).unwrap();
}

#[test]
fn a_fresh_model_loads_and_draws_through_the_patch_vq() {
    let work = tempfile::tempdir().unwrap();
    let (table, vq_dir, model, out) = (
        work.path().join("prompts"),
        work.path().join("vq"),
        work.path().join("model"),
        work.path().join("out"),
    );
    for d in [&table, &vq_dir, &model, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    prompts(
        &table,
        &[
            "a photo of a red circle",
            "a photo of two blue squares",
            "a green triangle left of a circle",
        ],
    );
    patch_vq(&vq_dir);

    let corpus = text::table_text(&table, None).unwrap();
    assert_eq!(corpus.len(), 3, "the `prompt` column only: {corpus:?}");
    let tokenizer = text::learn(&corpus, 400).unwrap();
    let written = write_model(&model, &Preset::Tiny.config(0, 48), &tokenizer, 0.02, 3).unwrap();
    assert_eq!(written.language.vocab_size, tokenizer.get_vocab_size(true));
    assert_eq!(written.image_vocab, 48);

    let loaded = load(&model, &candle_core::Device::Cpu).unwrap();
    assert_eq!(loaded.model.config(), &written);
    assert!(loaded.text.encode(" circle").unwrap().len() == 1);

    // The same seed writes the same weights; another seed others.
    let again = work.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    write_model(&again, &Preset::Tiny.config(0, 48), &tokenizer, 0.02, 3).unwrap();
    let bytes = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(bytes(&model), bytes(&again));
    write_model(&again, &Preset::Tiny.config(0, 48), &tokenizer, 0.02, 4).unwrap();
    assert_ne!(bytes(&model), bytes(&again));

    let (model_digest, vq_digest) = (Digest::of_bytes(b"init"), Digest::of_bytes(b"vq"));
    let config = GenerateConfig {
        max_rationale_tokens: 4,
        cfg_weight: 2.0,
        device: DeviceChoice::Cpu,
        ..GenerateConfig::default()
    };
    let job = Job {
        prompts: &table,
        model: ModelInput {
            dir: &model,
            digest: &model_digest,
        },
        tokenizer: Some(ModelInput {
            dir: &vq_dir,
            digest: &vq_digest,
        }),
        seed: 1,
        out_dir: &out,
    };
    let generated = write_generations(&config, job, None, &()).unwrap();
    assert_eq!(generated.rows, 3);
}

#[test]
fn a_table_without_text_columns_is_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    prompts(work.path(), &["a red circle"]);
    let err = text::table_text(work.path(), Some(&["nope".to_string()])).unwrap_err();
    assert!(err.contains("nope"), "{err}");
    let err = text::table_text(work.path(), Some(&["family".to_string(), "id".to_string()]))
        .map(|lines| lines.len())
        .unwrap();
    assert_eq!(err, 2, "named string columns are read");
}
