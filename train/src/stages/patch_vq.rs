//! `tokenizer.patch_vq`: learn a patch VQ codebook from the images of a table.

use super::decode_rgb;
use crate::patch_vq::{PatchVq, PatchVqConfig, TrainOptions, psnr};
use arrow::array::{Array, BinaryArray, StructArray};
use datasets::table::TableReader;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext,
    StageError,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Config of `tokenizer.patch_vq`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchVqStageConfig {
    /// Side of the square images (every image of the table must have it).
    #[serde(default = "default_image_size")]
    pub image_size: u32,
    /// Side of a patch, dividing the image size: (image/patch)² codes per image.
    #[serde(default = "default_patch")]
    pub patch: u32,
    /// Codebook vectors: the size of the image-code vocabulary.
    #[serde(default = "default_codebook")]
    pub codebook_size: u32,
    /// Images to learn from (the first ones of the table); the next `holdout` measure
    /// the reconstruction.
    #[serde(default = "default_images")]
    pub images: usize,
    /// Held-out images for the reported PSNR.
    #[serde(default = "default_holdout")]
    pub holdout: usize,
    /// Patches sampled for k-means.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Lloyd iterations.
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    #[serde(default)]
    pub seed: u64,
}

fn default_image_size() -> u32 {
    64
}
fn default_patch() -> u32 {
    4
}
fn default_codebook() -> u32 {
    256
}
fn default_images() -> usize {
    400
}
fn default_holdout() -> usize {
    100
}
fn default_samples() -> usize {
    40_000
}
fn default_iterations() -> usize {
    15
}

pub struct TrainPatchVq;

/// The decoded images of the `image` column, up to `limit`.
pub(crate) fn table_images(
    dir: &std::path::Path,
    limit: usize,
) -> Result<Vec<image::RgbImage>, StageError> {
    let reader = TableReader::open(dir)?;
    let mut out = Vec::new();
    for batch in reader.batches(Some(&["image"])) {
        let batch = batch?;
        let images = batch
            .column(0)
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| StageError::msg("column `image` is not an image struct"))?;
        let bytes = images
            .column_by_name("bytes")
            .and_then(|c| c.as_any().downcast_ref::<BinaryArray>())
            .ok_or_else(|| StageError::msg("column `image` has no `bytes`"))?;
        for i in 0..bytes.len() {
            if out.len() == limit {
                return Ok(out);
            }
            if bytes.is_null(i) {
                continue;
            }
            out.push(
                decode_rgb(bytes.value(i))
                    .map_err(|e| StageError::msg(format!("image {}: {e}", out.len())))?,
            );
        }
    }
    Ok(out)
}

impl Stage for TrainPatchVq {
    type Config = PatchVqStageConfig;
    const KIND: &'static str = "tokenizer.patch_vq";
    const VERSION: u32 = 1;
    const DOC: &'static str =
        "Learn a patch VQ image tokenizer (k-means over image patches) from a table's images.";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "images",
        kinds: &[ArtifactKind::Table],
        schema: None,
        arity: Arity::One,
        doc: "a table with an `image` column (source_image, sft_sample, …)",
    }];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Model));
    const USES_SEED: bool = false;

    fn validate(config: &PatchVqStageConfig, _: &pipeline::Bindings) -> Result<(), String> {
        PatchVqConfig {
            image_size: config.image_size,
            patch: config.patch,
            codebook_size: config.codebook_size,
        }
        .check()?;
        if config.images == 0 {
            return Err("`images` must be at least 1".into());
        }
        Ok(())
    }

    async fn run(
        &self,
        config: PatchVqStageConfig,
        ctx: StageContext,
    ) -> Result<Output, StageError> {
        let input = ctx.input("images")?.clone();
        tokio::task::spawn_blocking(move || {
            let all = table_images(&input.dir, config.images + config.holdout)?;
            if all.len() <= config.holdout {
                return Err(StageError::msg(format!(
                    "the table has {} images; training needs more than the {} held out",
                    all.len(),
                    config.holdout
                )));
            }
            let split = all.len() - config.holdout.min(all.len() / 2);
            let (train, held) = all.split_at(split);
            let vq = PatchVq::train(
                train,
                &TrainOptions {
                    config: PatchVqConfig {
                        image_size: config.image_size,
                        patch: config.patch,
                        codebook_size: config.codebook_size,
                    },
                    samples: config.samples,
                    iterations: config.iterations,
                    seed: config.seed,
                },
            )
            .map_err(StageError::from)?;
            let mut psnrs = Vec::new();
            for img in held {
                let codes = vq.encode(img)?;
                psnrs.push(psnr(img, &vq.decode(&codes)?));
            }
            // Exact reconstructions (infinite PSNR) are counted apart; the mean is over the rest.
            let lossy: Vec<f64> = psnrs.iter().copied().filter(|p| p.is_finite()).collect();
            let exact = psnrs.len() - lossy.len();
            let mean_psnr =
                (!lossy.is_empty()).then(|| lossy.iter().sum::<f64>() / lossy.len() as f64);
            vq.save(&ctx.out_dir)?;
            ctx.count("train_images", train.len() as u64);
            ctx.count("holdout_images", held.len() as u64);
            let lossy_psnr = match mean_psnr {
                Some(p) => format!(", PSNR {p:.2} dB over the other {}", lossy.len()),
                None => String::new(),
            };
            ctx.log(format!(
                "patch VQ {}×{} patches, {} codes, {} tokens per image: {exact} of {} held-out images reconstructed exactly{lossy_psnr}",
                config.patch,
                config.patch,
                vq.config.codebook_size,
                vq.config.tokens(),
                held.len()
            ));
            Ok(Output {
                rows: None,
                schema: None,
                meta: serde_json::json!({
                    "kind": "patch_vq",
                    "config": vq.config,
                    "holdout_psnr_db": mean_psnr.map(|p| (p * 100.0).round() / 100.0),
                    "holdout_exact": exact,
                    "holdout_images": held.len(),
                }),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("patch VQ thread: {e}")))?
    }
}
