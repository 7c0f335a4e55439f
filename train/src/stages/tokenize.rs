//! `images.tokenize`: fill the `image_codes` of SFT samples with an image tokenizer.
//!
//! Codes are memoised per (tokenizer, image bytes): when rows are added to the table,
//! only the new images are encoded.

use super::decode_rgb;
use crate::tokenizer::{ImageTokenizer, load};
use datasets::table::{ShardOptions, ShardWriter, TableReader};
use pipeline::memo::Memo;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, Digest, InputSpec, Output, OutputDecl, Resources, Stage,
    StageContext, StageError,
};
use schemars::JsonSchema;
use schemas::Row;
use schemas::sft_sample::SftSample;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Config of `images.tokenize`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeConfig {
    /// Threads to encode with (at most what the run grants).
    #[serde(default)]
    pub threads: Option<u32>,
}

pub struct Tokenize;

#[derive(Serialize)]
struct CodesKey<'a> {
    tokenizer: &'a Digest,
    image: Digest,
}

fn encode_one(
    tokenizer: &dyn ImageTokenizer,
    memo: &Memo,
    tokenizer_digest: &Digest,
    row: &SftSample,
) -> Result<Vec<u16>, StageError> {
    let bytes = row
        .image
        .bytes
        .as_deref()
        .ok_or_else(|| StageError::msg(format!("row `{}`: the image has no bytes", row.id)))?;
    let key = Digest::of_json(&CodesKey {
        tokenizer: tokenizer_digest,
        image: Digest::of_bytes(bytes),
    });
    if let Some(hit) = memo.get(&key)? {
        return Ok(hit
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect());
    }
    let img = decode_rgb(bytes).map_err(|e| StageError::msg(format!("row `{}`: {e}", row.id)))?;
    let codes = tokenizer
        .encode(&img)
        .map_err(|e| StageError::msg(format!("row `{}`: {e}", row.id)))?;
    let value: Vec<u8> = codes.iter().flat_map(|c| c.to_le_bytes()).collect();
    memo.put(&key, &value)?;
    Ok(codes)
}

impl Stage for Tokenize {
    type Config = TokenizeConfig;
    const KIND: &'static str = "images.tokenize";
    const VERSION: u32 = 1;
    const DOC: &'static str =
        "Fill the image codes of SFT samples with an image tokenizer (patch VQ, VQ-16).";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "samples",
            kinds: &[ArtifactKind::Table],
            schema: Some("sft_sample"),
            arity: Arity::One,
            doc: "the SFT samples",
        },
        InputSpec {
            name: "tokenizer",
            kinds: &[ArtifactKind::Model],
            schema: None,
            arity: Arity::One,
            doc: "an image tokenizer model (e.g. tokenizer.patch_vq)",
        },
    ];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("sft_sample"));

    fn resources(config: &TokenizeConfig) -> Resources {
        Resources {
            threads: config.threads.unwrap_or(u32::MAX),
            ..Resources::default()
        }
    }

    async fn run(&self, _config: TokenizeConfig, ctx: StageContext) -> Result<Output, StageError> {
        let samples = ctx.input("samples")?.clone();
        let model = ctx.input("tokenizer")?.clone();
        let memo = ctx.memo("images.tokenize")?;
        tokio::task::spawn_blocking(move || {
            let tokenizer: Arc<dyn ImageTokenizer> =
                Arc::from(load(&model.dir).map_err(StageError::msg)?);
            let id = format!("{}@{}", tokenizer.kind(), model.digest.short());
            let reader = TableReader::open(&samples.dir)?;
            ctx.progress.set_total(reader.row_count()?, "images");
            let mut writer = ShardWriter::new(
                &ctx.out_dir,
                Arc::new(SftSample::SCHEMA.arrow_schema()),
                ShardOptions::default(),
            );
            let threads = ctx.threads.max(1);
            for rows in reader.rows::<SftSample>()? {
                ctx.check_cancelled()?;
                let mut rows = rows?;
                let chunk = rows.len().div_ceil(threads).max(1);
                let results: Vec<Result<(), StageError>> = std::thread::scope(|s| {
                    let handles: Vec<_> = rows
                        .chunks_mut(chunk)
                        .map(|part| {
                            let (tokenizer, memo, id, digest) =
                                (&tokenizer, &memo, &id, &model.digest);
                            s.spawn(move || {
                                for row in part {
                                    row.image_codes =
                                        Some(encode_one(tokenizer.as_ref(), memo, digest, row)?);
                                    row.tokenizer = Some(id.clone());
                                }
                                Ok(())
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("encoder threads do not panic"))
                        .collect()
                });
                for r in results {
                    r?;
                }
                writer.write(&schemas::to_batch(&rows)?)?;
                ctx.progress.inc(rows.len() as u64);
            }
            let summary = writer.finish()?;
            ctx.count("images", summary.rows);
            Ok(Output {
                rows: Some(summary.rows),
                schema: summary.schema_id.clone(),
                meta: serde_json::json!({"tokenizer": id, "tokens_per_image": tokenizer.tokens()}),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("tokenize thread: {e}")))?
    }
}
