//! `images.tokenize`: fill the `image_codes` of SFT samples with an image tokenizer.
//!
//! Codes are memoised per (tokenizer, image bytes): when rows are added to the table,
//! only the new images are encoded. Each thread encodes its rows in batches of
//! `batch_size` images, by default the tokenizer's (VQ-16: 16 on a GPU, in BF16; 2 on
//! the CPU, where each convolution already uses every core; the patch VQ: 1). Rows are
//! read, encoded and written a row group at a time.

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
    /// Images encoded together (default: the tokenizer's).
    #[serde(default)]
    pub batch_size: Option<u32>,
}

pub struct Tokenize;

#[derive(Serialize)]
struct CodesKey<'a> {
    tokenizer: &'a Digest,
    image: Digest,
}

/// Fill the codes of `rows`: memoised ones from the memo, the others encoded together
/// in one batch.
fn encode_rows(
    tokenizer: &dyn ImageTokenizer,
    memo: &Memo,
    tokenizer_digest: &Digest,
    rows: &mut [SftSample],
) -> Result<(), StageError> {
    let mut misses = Vec::new();
    let mut keys = Vec::new();
    let mut images = Vec::new();
    for (i, row) in rows.iter_mut().enumerate() {
        let bytes =
            row.image.bytes.as_deref().ok_or_else(|| {
                StageError::msg(format!("row `{}`: the image has no bytes", row.id))
            })?;
        let key = Digest::of_json(&CodesKey {
            tokenizer: tokenizer_digest,
            image: Digest::of_bytes(bytes),
        });
        if let Some(hit) = memo.get(&key)? {
            row.image_codes = Some(
                hit.chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            );
            continue;
        }
        let img =
            decode_rgb(bytes).map_err(|e| StageError::msg(format!("row `{}`: {e}", row.id)))?;
        misses.push(i);
        keys.push(key);
        images.push(img);
    }
    if images.is_empty() {
        return Ok(());
    }
    let ids = || -> String {
        let ids: Vec<&str> = misses.iter().map(|&i| rows[i].id.as_str()).collect();
        ids.join("`, `")
    };
    let codes = tokenizer
        .encode_batch(&images)
        .map_err(|e| StageError::msg(format!("rows `{}`: {e}", ids())))?;
    if codes.len() != images.len() {
        return Err(StageError::msg(format!(
            "rows `{}`: the tokenizer gave {} code sequences for {} images",
            ids(),
            codes.len(),
            images.len()
        )));
    }
    for ((i, key), codes) in misses.into_iter().zip(&keys).zip(codes) {
        let value: Vec<u8> = codes.iter().flat_map(|c| c.to_le_bytes()).collect();
        memo.put(key, &value)?;
        rows[i].image_codes = Some(codes);
    }
    Ok(())
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

    fn validate(config: &TokenizeConfig, _: &pipeline::Bindings) -> Result<(), String> {
        if config.batch_size == Some(0) {
            return Err("batch_size must be at least 1".into());
        }
        Ok(())
    }

    fn resources(config: &TokenizeConfig) -> Resources {
        Resources {
            threads: config.threads.unwrap_or(u32::MAX),
            ..Resources::default()
        }
    }

    async fn run(&self, config: TokenizeConfig, ctx: StageContext) -> Result<Output, StageError> {
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
            let batch_size = config
                .batch_size
                .map_or_else(|| tokenizer.batch_size(), |b| b as usize)
                .max(1);
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
                                for batch in part.chunks_mut(batch_size) {
                                    encode_rows(tokenizer.as_ref(), memo, digest, batch)?;
                                    for row in batch {
                                        row.tokenizer = Some(id.clone());
                                    }
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
