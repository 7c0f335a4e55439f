//! The `model.generate` stage's work on the tiny fixture model: a table of prompts
//! becomes `eval_sample` rows with rationales and PNG images, the same for the same
//! seed whatever the batch size; plain mode has no rationale; the shapes world's patch
//! VQ can stand in for VQ-16.

mod janus_support;

use datasets::table::{ShardOptions, ShardWriter, TableReader};
use image::RgbImage;
use janus_support::fixtures;
use pipeline::Digest;
use schemas::Row;
use schemas::eval_sample::EvalSample;
use schemas::rl_prompt::RlPrompt;
use std::path::Path;
use std::sync::Arc;
use train::janus::draw::{GenerateConfig, SamplingConfig};
use train::janus::load::DeviceChoice;
use train::patch_vq::{PatchVq, PatchVqConfig, TrainOptions};
use train::stages::generate::{Job, ModelInput, write_generations};

fn prompts(dir: &Path) {
    let rows: Vec<RlPrompt> = ["a red cube", "two green stars above a blue circle"]
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

fn config(batch_size: usize) -> GenerateConfig {
    GenerateConfig {
        samples: 2,
        max_rationale_tokens: 5,
        text_sampling: SamplingConfig {
            temperature: 1.0,
            top_k: Some(50),
            top_p: None,
        },
        cfg_weight: 3.0,
        batch_size,
        device: DeviceChoice::Cpu,
        ..GenerateConfig::default()
    }
}

/// Run the stage's work; the rows it wrote.
fn run(config: &GenerateConfig, tokenizer: Option<&Path>) -> Vec<EvalSample> {
    let work = tempfile::tempdir().unwrap();
    let (table, out) = (work.path().join("prompts"), work.path().join("out"));
    std::fs::create_dir_all(&table).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    prompts(&table);
    let digest = Digest::of_bytes(b"tiny janus");
    let tokenizer_digest = Digest::of_bytes(b"patch vq");
    let job = Job {
        prompts: &table,
        model: ModelInput {
            dir: &fixtures().join("original"),
            digest: &digest,
        },
        tokenizer: tokenizer.map(|dir| ModelInput {
            dir,
            digest: &tokenizer_digest,
        }),
        seed: 11,
        out_dir: &out,
    };
    let generated = write_generations(config, job, None, &()).unwrap();
    assert_eq!(generated.rows, 4);
    assert_eq!(generated.images_generated, 4);
    let reader = TableReader::open(&out).unwrap();
    reader
        .rows::<EvalSample>()
        .unwrap()
        .flat_map(Result::unwrap)
        .collect()
}

fn image(row: &EvalSample) -> RgbImage {
    image::load_from_memory(row.image.bytes.as_deref().unwrap())
        .unwrap()
        .to_rgb8()
}

#[test]
fn prompts_become_rationales_and_images_independent_of_batching() {
    let rows = run(&config(3), None);
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["p0-0", "p0-1", "p1-0", "p1-1"]);
    for row in &rows {
        assert_eq!(image(row).dimensions(), (32, 32));
        assert!(row.rationale.is_some());
        assert_eq!(
            (row.benchmark.as_str(), row.tag.as_deref()),
            ("shapes", Some("colors"))
        );
        assert_eq!(row.model, Digest::of_bytes(b"tiny janus").to_hex());
        assert_eq!(
            row.image.path.as_deref(),
            Some(format!("{}.png", row.id).as_str())
        );
        assert!(row.score.is_none());
    }
    // Two samples of a prompt differ (their seeds do).
    assert_ne!(rows[0].seed, rows[1].seed);
    assert_ne!(rows[0].image, rows[1].image);
    // Other batches give the same rows.
    assert_eq!(run(&config(2), None), rows);
}

#[test]
fn plain_mode_draws_without_a_rationale() {
    let config = GenerateConfig {
        rationale: false,
        ..config(8)
    };
    for row in run(&config, None) {
        assert!(row.rationale.is_none());
        assert_eq!(image(&row).dimensions(), (32, 32));
    }
}

#[test]
fn the_shapes_worlds_patch_vq_decodes_the_codes() {
    let scenes: Vec<RgbImage> = (0..4u8)
        .map(|i| {
            RgbImage::from_fn(64, 64, |x, y| {
                image::Rgb([(x as u8) * 4, (y as u8) * 4, i * 60])
            })
        })
        .collect();
    let vq = PatchVq::train(
        &scenes,
        &TrainOptions {
            config: PatchVqConfig {
                image_size: 64,
                patch: 4,
                codebook_size: 256,
            },
            samples: 2000,
            iterations: 2,
            seed: 1,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    vq.save(dir.path()).unwrap();
    let rows = run(&config(8), Some(dir.path()));
    for row in &rows {
        assert_eq!(image(row).dimensions(), (64, 64));
    }
}
