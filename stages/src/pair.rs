//! `pair.sft`: join rationales to images by id into SFT samples.
//!
//! Three passes, memory bounded by the narrow columns, never by the images:
//! 1. the image table streams batch by batch into a narrow frame (position, id, SHA-256,
//!    aesthetic score, path, source): the SHA-256 is the original's, recorded by
//!    `images.prepare` in the metadata, or else that of the image bytes;
//! 2. polars decides the pairs on that frame and on the rationale table scanned lazily
//!    (id, length in tokens, normalised text): join by id, filters, deduplication
//!    ([`select`]);
//! 3. the image table streams again, and each kept image is written with its rationale
//!    (whose rows, text only, are held in memory) as an `sft_sample`.
//!
//! Every row that does not become a sample is in a table of the artifact, with its
//! reason ([`datasets::images::rejects`]): `unmatched/images/` (`no_rationale`),
//! `unmatched/rationales/` (`no_image`), and `dropped/` (`duplicate_id`,
//! `rationale_too_short`, `rationale_too_long`, `low_aesthetic`, `duplicate_image`,
//! `duplicate_rationale`).

mod select;
mod text;

pub use text::{normalised, token_count};

use crate::sources::Tracker;
use datasets::images::rejects;
use datasets::images::{original, sha256_hex};
use datasets::table::frames::frame_to_batch;
use datasets::table::{ShardOptions, ShardWriter, TableReader, TableSummary, scan};
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext,
    StageError,
};
use polars::prelude::{DataFrame, DataType, col, df};
use schemars::JsonSchema;
use schemas::rationale::Rationale;
use schemas::sft_sample::SftSample;
use schemas::source_image::SourceImage;
use schemas::{AugmentedPrompts, Row};
use select::{Decisions, Rules, decide};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Folders of the tables of rows set aside, inside the artifact.
pub const UNMATCHED_IMAGES: &str = "unmatched/images";
pub const UNMATCHED_RATIONALES: &str = "unmatched/rationales";
pub const DROPPED: &str = "dropped";

/// Config of `pair.sft`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {
    /// Keep only the first of images with the same SHA-256 (of the original file, as
    /// `images.prepare` records it; else of the image bytes).
    #[serde(default = "yes")]
    pub dedup_images: bool,
    /// Keep only the first of rationales with the same normalised text (lower case,
    /// letters and digits, single spaces).
    #[serde(default = "yes")]
    pub dedup_rationales: bool,
    /// Drop pairs whose rationale has fewer tokens than this (whitespace-separated
    /// words until a text tokenizer joins the project).
    #[serde(default)]
    pub min_tokens: Option<u32>,
    /// Drop pairs whose rationale has more tokens than this.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Drop pairs whose image has an aesthetic score under this; images without a
    /// score are kept.
    #[serde(default)]
    pub min_aesthetic: Option<f64>,
}

fn yes() -> bool {
    true
}

impl Default for PairConfig {
    fn default() -> Self {
        PairConfig {
            dedup_images: true,
            dedup_rationales: true,
            min_tokens: None,
            max_tokens: None,
            min_aesthetic: None,
        }
    }
}

impl PairConfig {
    fn rules(&self) -> Rules {
        Rules {
            dedup_images: self.dedup_images,
            dedup_rationales: self.dedup_rationales,
            min_tokens: self.min_tokens,
            max_tokens: self.max_tokens,
            min_aesthetic: self.min_aesthetic,
        }
    }
}

/// What a run wrote.
#[derive(Clone, Debug)]
pub struct PairSummary {
    pub samples: TableSummary,
    pub unmatched_images: u64,
    pub unmatched_rationales: u64,
    /// Rows set aside for other reasons, by reason.
    pub dropped: BTreeMap<String, u64>,
}

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

/// The SHA-256 that identifies a row's image: the original's, or the bytes'.
fn image_sha(row: &SourceImage) -> Option<String> {
    let recorded = row
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .and_then(|m| m[original::KEY]["sha256"].as_str().map(str::to_string));
    recorded.or_else(|| row.image.bytes.as_deref().map(sha256_hex))
}

/// Pass 1: the narrow frame of the image table.
fn image_index(reader: &TableReader) -> Result<DataFrame, StageError> {
    let (mut ids, mut shas, mut scores, mut paths, mut sources) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rows in reader.rows::<SourceImage>()? {
        for row in rows? {
            shas.push(image_sha(&row));
            scores.push(row.aesthetic);
            paths.push(row.image.path);
            sources.push(row.source);
            ids.push(row.id);
        }
    }
    let pos: Vec<u64> = (0..ids.len() as u64).collect();
    Ok(df!(
        "pos" => pos,
        "id" => ids,
        "sha" => shas,
        "aesthetic" => scores,
        "path" => paths,
        "source" => sources,
    )?)
}

/// The rationale rows, and the narrow frame of them.
fn rationale_index(
    reader: &TableReader,
) -> Result<(Vec<Rationale>, polars::prelude::LazyFrame), StageError> {
    let mut rows = Vec::new();
    for batch in reader.rows::<Rationale>()? {
        rows.extend(batch?);
    }
    let frame = scan(reader.files())?
        .select([col("id"), col("detailed_caption")])
        .with_row_index("rpos", None)
        .select([
            col("id"),
            col("rpos").cast(DataType::UInt64),
            token_count(col("detailed_caption")).alias("tokens"),
            normalised(col("detailed_caption")).alias("norm"),
        ]);
    Ok((rows, frame))
}

/// Write a reject frame as a table in `dir`; its row count.
fn write_rejects(frame: &DataFrame, dir: &Path) -> Result<u64, StageError> {
    let mut writer = rejects::writer(dir)?;
    let schema = Arc::new(rejects::SCHEMA.arrow_schema());
    writer.write(&frame_to_batch(frame, Some(&schema))?)?;
    Ok(writer.finish()?.rows)
}

/// Reasons and their counts in a reject frame.
fn by_reason(frame: &DataFrame) -> Result<BTreeMap<String, u64>, StageError> {
    let mut out = BTreeMap::new();
    for reason in frame.column("reason")?.str()?.iter().flatten() {
        *out.entry(reason.to_string()).or_default() += 1;
    }
    Ok(out)
}

/// Pair the `source_image` table in `images` with the `rationale` table in
/// `rationales` into an `sft_sample` table in `out_dir`, with the tables of rows set
/// aside in its sub-folders.
pub fn write_pairs(
    config: &PairConfig,
    images: &Path,
    rationales: &Path,
    out_dir: &Path,
    tracker: &impl Tracker,
) -> Result<PairSummary, StageError> {
    let image_reader = TableReader::open(images)?;
    let (rationale_rows, rationale_frame) = rationale_index(&TableReader::open(rationales)?)?;
    let Decisions {
        pairs,
        unmatched_images,
        unmatched_rationales,
        dropped,
    } = decide(
        image_index(&image_reader)?,
        rationale_frame,
        &config.rules(),
    )?;
    let unmatched_images = write_rejects(&unmatched_images, &out_dir.join(UNMATCHED_IMAGES))?;
    let unmatched_rationales =
        write_rejects(&unmatched_rationales, &out_dir.join(UNMATCHED_RATIONALES))?;
    write_rejects(&dropped, &out_dir.join(DROPPED))?;

    // Pass 3: the kept images, in order, each with its rationale.
    tracker.total(image_reader.row_count()?, "images");
    let mut writer = ShardWriter::new(
        out_dir,
        Arc::new(SftSample::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    let mut next = pairs.iter().peekable();
    let mut pos = 0u64;
    for rows in image_reader.rows::<SourceImage>()? {
        let rows = rows?;
        let n = rows.len() as u64;
        let mut out = Vec::new();
        for image in rows {
            if let Some(&(_, rpos)) = next.next_if(|(p, _)| *p == pos) {
                let r = &rationale_rows[rpos as usize];
                out.push(SftSample {
                    id: image.id.clone(),
                    prompts: prompts(r, &image),
                    rationale: r.detailed_caption.clone(),
                    image: image.image,
                    image_codes: None,
                    tokenizer: None,
                    provenance: r.provenance.clone(),
                });
            }
            pos += 1;
        }
        writer.write(&schemas::to_batch(&out)?)?;
        tracker.advance(n)?;
    }
    if next.peek().is_some() {
        return Err(StageError::msg(format!(
            "{}: the image table changed while it was read",
            images.display()
        )));
    }
    Ok(PairSummary {
        samples: writer.finish()?,
        unmatched_images,
        unmatched_rationales,
        dropped: by_reason(&dropped)?,
    })
}

pub struct PairSft;

impl Stage for PairSft {
    type Config = PairConfig;
    const KIND: &'static str = "pair.sft";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Join rationales to images by id into SFT samples; filter by length and aesthetic score, deduplicate by image hash and rationale text, and keep every row set aside in a table with its reason.";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "images",
            kinds: &[ArtifactKind::Table],
            schema: Some("source_image"),
            arity: Arity::One,
            doc: "the images (prepared by images.prepare, or as a source read them)",
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

    async fn run(&self, config: PairConfig, ctx: StageContext) -> Result<Output, StageError> {
        let images = ctx.input("images")?.clone();
        let rationales = ctx.input("rationales")?.clone();
        tokio::task::spawn_blocking(move || {
            let summary = write_pairs(&config, &images.dir, &rationales.dir, &ctx.out_dir, &ctx)?;
            ctx.count("pairs", summary.samples.rows);
            ctx.count("images_without_rationale", summary.unmatched_images);
            ctx.count("rationales_without_image", summary.unmatched_rationales);
            for (reason, n) in &summary.dropped {
                ctx.count(&format!("dropped_{reason}"), *n);
            }
            let mut meta = summary.samples.meta();
            meta["set_aside"] = serde_json::json!({
                UNMATCHED_IMAGES: summary.unmatched_images,
                UNMATCHED_RATIONALES: summary.unmatched_rationales,
                DROPPED: summary.dropped,
            });
            Ok(Output {
                rows: Some(summary.samples.rows),
                schema: summary.samples.schema_id.clone(),
                meta,
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("pairing thread: {e}")))?
    }
}
