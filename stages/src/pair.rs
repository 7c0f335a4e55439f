//! `pair.sft`: join rationales to images by id into SFT samples.
//!
//! The rationale table is held in memory (text only); images stream through batch by
//! batch. Rows without a partner on either side are counted and listed in the run's
//! counters (`images_without_rationale`, `rationales_without_image`).

use datasets::table::{ShardOptions, ShardWriter, TableReader};
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext,
    StageError,
};
use schemars::JsonSchema;
use schemas::rationale::Rationale;
use schemas::sft_sample::SftSample;
use schemas::source_image::SourceImage;
use schemas::{AugmentedPrompts, Row};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Config of `pair.sft`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {}

pub struct PairSft;

/// The prompt candidates of a rationale: its augmented prompts, or else its brief
/// caption (or the image's caption) as the short caption.
fn prompts(r: &Rationale, image: &SourceImage) -> AugmentedPrompts {
    r.augmented_prompts
        .clone()
        .unwrap_or_else(|| AugmentedPrompts {
            short_caption: r.brief_caption.clone().or_else(|| image.caption.clone()),
            ..AugmentedPrompts::default()
        })
}

impl Stage for PairSft {
    type Config = PairConfig;
    const KIND: &'static str = "pair.sft";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Join rationales to images by id into SFT samples.";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "images",
            kinds: &[ArtifactKind::Table],
            schema: Some("source_image"),
            arity: Arity::One,
            doc: "the images",
        },
        InputSpec {
            name: "rationales",
            kinds: &[ArtifactKind::Table],
            schema: Some("rationale"),
            arity: Arity::One,
            doc: "their rationales (same ids)",
        },
    ];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("sft_sample"));

    async fn run(&self, _config: PairConfig, ctx: StageContext) -> Result<Output, StageError> {
        let images = ctx.input("images")?.clone();
        let rationales = ctx.input("rationales")?.clone();
        tokio::task::spawn_blocking(move || {
            let mut by_id: HashMap<String, Rationale> = HashMap::new();
            for rows in TableReader::open(&rationales.dir)?.rows::<Rationale>()? {
                for r in rows? {
                    by_id.insert(r.id.clone(), r);
                }
            }
            let reader = TableReader::open(&images.dir)?;
            ctx.progress.set_total(reader.row_count()?, "images");
            let mut writer = ShardWriter::new(
                &ctx.out_dir,
                Arc::new(SftSample::SCHEMA.arrow_schema()),
                ShardOptions::default(),
            );
            let mut unmatched_images = 0u64;
            for rows in reader.rows::<SourceImage>()? {
                ctx.check_cancelled()?;
                let rows = rows?;
                ctx.progress.inc(rows.len() as u64);
                let mut out = Vec::with_capacity(rows.len());
                for image in rows {
                    let Some(r) = by_id.remove(&image.id) else {
                        unmatched_images += 1;
                        continue;
                    };
                    out.push(SftSample {
                        id: image.id.clone(),
                        prompts: prompts(&r, &image),
                        rationale: r.detailed_caption,
                        image: image.image,
                        image_codes: None,
                        tokenizer: None,
                        provenance: r.provenance,
                    });
                }
                writer.write(&schemas::to_batch(&out)?)?;
            }
            let summary = writer.finish()?;
            ctx.count("pairs", summary.rows);
            ctx.count("images_without_rationale", unmatched_images);
            ctx.count("rationales_without_image", by_id.len() as u64);
            Ok(Output {
                rows: Some(summary.rows),
                schema: summary.schema_id.clone(),
                meta: summary.meta(),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("pairing thread: {e}")))?
    }
}
