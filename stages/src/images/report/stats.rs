//! The figures of the dataset report, read with polars from the tables (only the
//! columns each figure needs: image bytes are never read here): sample counts and
//! prompt families, rationale lengths, the originals' sizes and formats, and the rows
//! set aside by reason from every reject sub-table of the inputs.

use crate::pair::token_count;
use datasets::images::{original, rejects};
use datasets::table::{TableReader, scan};
use pipeline::StageError;
use polars::lazy::dsl;
use polars::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Minimum, median, mean and maximum of some whole numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Spread {
    pub min: u64,
    pub median: u64,
    pub mean: f64,
    pub max: u64,
}

impl Spread {
    pub fn of(values: &[u64]) -> Option<Spread> {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        Some(Spread {
            min: *sorted.first()?,
            median: sorted[sorted.len() / 2],
            mean: sorted.iter().sum::<u64>() as f64 / sorted.len() as f64,
            max: *sorted.last()?,
        })
    }
}

/// Rows one sub-table set aside for one reason, with one example.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetAside {
    /// The input (`samples`, `images`) and the sub-table (`quarantine`, …).
    pub input: String,
    pub table: String,
    pub reason: String,
    pub rows: u64,
    pub example_id: String,
    pub example_detail: String,
}

/// What the samples table says.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SampleStats {
    pub rows: u64,
    /// Rows whose image codes are filled, and by which tokenizers.
    pub with_codes: u64,
    pub tokenizers: Vec<String>,
    /// Rows with at least one candidate in each prompt family, in the families' order.
    pub prompt_families: Vec<(String, u64)>,
    pub rationale_tokens: Option<Spread>,
}

/// What the (prepared) image table says of the originals.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImageStats {
    pub rows: u64,
    pub formats: BTreeMap<String, u64>,
    pub shorter_side: Option<Spread>,
    pub longer_side: Option<Spread>,
}

const FAMILIES: [&str; 4] = ["paraphrases", "tags", "varied_captions", "object_prompts"];

fn lazy(dir: &Path) -> Result<LazyFrame, StageError> {
    Ok(scan(TableReader::open(dir)?.files())?)
}

fn whole_numbers(frame: &DataFrame, column: &str) -> Result<Vec<u64>, StageError> {
    let values = frame.column(column)?.cast(&DataType::UInt64)?;
    Ok(values.u64()?.iter().flatten().collect())
}

/// The samples' figures and their rationale lengths in tokens.
pub fn samples(dir: &Path) -> Result<(SampleStats, Vec<u64>), StageError> {
    let tokens = lazy(dir)?
        .select([token_count(col("rationale")).alias("tokens")])
        .collect()?;
    let tokens = whole_numbers(&tokens, "tokens")?;
    let prompts = |field: &str| col("prompts").struct_().field_by_name(field);
    let mut sums = vec![
        col("image_codes").is_not_null().sum().alias("with_codes"),
        prompts("short_caption")
            .is_not_null()
            .sum()
            .alias("short_caption"),
    ];
    sums.extend(
        FAMILIES
            .iter()
            .map(|f| prompts(f).list().len().gt(lit(0)).sum().alias(*f)),
    );
    let counts = lazy(dir)?.select(sums).collect()?;
    let count = |name: &str| -> Result<u64, StageError> {
        Ok(whole_numbers(&counts, name)?.first().copied().unwrap_or(0))
    };
    let tokenizers = lazy(dir)?
        .select([col("tokenizer").drop_nulls().unique_stable()])
        .collect()?;
    let prompt_families = std::iter::once("short_caption")
        .chain(FAMILIES)
        .map(|family| Ok((family.to_string(), count(family)?)))
        .collect::<Result<_, StageError>>()?;
    Ok((
        SampleStats {
            rows: tokens.len() as u64,
            with_codes: count("with_codes")?,
            tokenizers: tokenizers
                .column("tokenizer")?
                .str()?
                .iter()
                .flatten()
                .map(str::to_string)
                .collect(),
            prompt_families,
            rationale_tokens: Spread::of(&tokens),
        },
        tokens,
    ))
}

/// The originals' figures, and each one's shorter side: from the record
/// `images.prepare` keeps, else from the row's own width and height.
pub fn images(dir: &Path) -> Result<(ImageStats, Vec<u64>), StageError> {
    let recorded = |field: &str, fallback: &str| {
        col("metadata")
            .str()
            .json_path_match(lit(original::json_path(field)))
            .cast(DataType::UInt64)
            .fill_null(col(fallback).cast(DataType::UInt64))
    };
    let sizes = lazy(dir)?
        .select([
            recorded("width", "width").alias("w"),
            recorded("height", "height").alias("h"),
            col("metadata")
                .str()
                .json_path_match(lit(original::json_path("format")))
                .fill_null(lit("unknown"))
                .alias("format"),
        ])
        .select([
            dsl::min_horizontal([col("w"), col("h")])?.alias("short"),
            dsl::max_horizontal([col("w"), col("h")])?.alias("long"),
            col("format"),
        ])
        .collect()?;
    let short = whole_numbers(&sizes, "short")?;
    let long = whole_numbers(&sizes, "long")?;
    let mut formats = BTreeMap::new();
    for f in sizes.column("format")?.str()?.iter().flatten() {
        *formats.entry(f.to_string()).or_default() += 1;
    }
    Ok((
        ImageStats {
            rows: sizes.height() as u64,
            formats,
            shorter_side: Spread::of(&short),
            longer_side: Spread::of(&long),
        },
        short,
    ))
}

/// The rows set aside in the reject sub-tables of the artifact in `dir` (bound to
/// `input`), by table and reason.
pub fn set_aside(input: &str, dir: &Path) -> Result<Vec<SetAside>, StageError> {
    let mut out = Vec::new();
    for (table, folder) in rejects::subtables(dir)? {
        let groups = lazy(&folder)?
            .group_by_stable([col("reason")])
            .agg([
                len().alias("rows"),
                col("id").first().alias("id"),
                col("detail").first().alias("detail"),
            ])
            .collect()?;
        let rows = whole_numbers(&groups, "rows")?;
        let text = |name: &str| -> Result<Vec<String>, StageError> {
            Ok(groups
                .column(name)?
                .str()?
                .iter()
                .map(|s| s.unwrap_or_default().to_string())
                .collect())
        };
        for (((reason, rows), id), detail) in text("reason")?
            .into_iter()
            .zip(rows)
            .zip(text("id")?)
            .zip(text("detail")?)
        {
            out.push(SetAside {
                input: input.to_string(),
                table: table.clone(),
                reason,
                rows,
                example_id: id,
                example_detail: detail,
            });
        }
    }
    Ok(out)
}
