//! `table.filter`: keep the rows of a table that match a SQL condition, optionally a
//! seeded random sample of them, and optionally only some columns.
//!
//! Works shard by shard, so memory stays bounded by one shard whatever the table size.
//! The sample keeps a row when a hash of (seed, its position in the input table) falls
//! under the fraction: the same rows for the same seed, however the input is sharded.

use arrow::datatypes::{Schema, SchemaRef};
use datasets::rng::mix;
use datasets::table::frames::frame_to_batch;
use datasets::table::{ShardOptions, ShardWriter, TableReader, read_shard};
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext,
    StageError,
};
use polars::prelude::*;
use polars::sql::SQLContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Config of `table.filter`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// A SQL condition over the columns, e.g. `tag = 'counting' AND LENGTH(prompt) < 60`.
    #[serde(default, rename = "where")]
    pub condition: Option<String>,
    /// Keep each matching row with this probability (0 < sample ≤ 1).
    #[serde(default)]
    pub sample: Option<f64>,
    /// Seed of the sample.
    #[serde(default)]
    pub seed: u64,
    /// Keep only these columns, in this order.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

const ROW: &str = "__reasongen_row";

pub struct TableFilter;

/// A well-mixed hash of (seed, row) in [0, 1): SplitMix64's finaliser.
fn unit_hash(seed: u64, row: u64) -> f64 {
    let z = mix(seed ^ row.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn filter_shard(config: &FilterConfig, df: DataFrame, offset: u64) -> PolarsResult<DataFrame> {
    let mut lf = df.lazy().with_row_index(ROW, Some(offset as IdxSize));
    if let Some(condition) = &config.condition {
        let mut sql = SQLContext::new();
        sql.register("input", lf);
        lf = sql.execute(&format!("SELECT * FROM input WHERE {condition}"))?;
    }
    let mut df = lf.collect()?;
    if let Some(fraction) = config.sample {
        let rows = df.column(ROW)?.cast(&DataType::UInt64)?;
        let mask: BooleanChunked = rows
            .u64()?
            .iter()
            .map(|r| r.map(|r| unit_hash(config.seed, r) < fraction))
            .collect();
        df = df.filter(&mask)?;
    }
    let df = df.drop(ROW)?;
    match &config.columns {
        Some(cols) => df.select(cols.iter().map(|c| c.as_str())),
        None => Ok(df),
    }
}

/// The input's schema, or its projection onto `columns`. A projection is no longer the
/// input's schema: it loses the schema id, and its features are recomputed.
fn output_schema(input: &SchemaRef, columns: Option<&[String]>) -> Result<SchemaRef, StageError> {
    let Some(columns) = columns else {
        return Ok(input.clone());
    };
    let mut fields = Vec::with_capacity(columns.len());
    for c in columns {
        let f = input
            .field_with_name(c)
            .map_err(|_| StageError::msg(format!("`columns`: no column `{c}` in the input")))?;
        fields.push(f.clone());
    }
    let schema = Schema::new(fields);
    let features = schemas::hf_features(&schema).to_string();
    Ok(Arc::new(schema.with_metadata(
        std::collections::HashMap::from([(schemas::HF_METADATA_KEY.to_string(), features)]),
    )))
}

impl Stage for TableFilter {
    type Config = FilterConfig;
    const KIND: &'static str = "table.filter";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Keep the rows of a table that match a SQL condition; optionally a seeded sample, optionally some columns.";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "input",
        kinds: &[ArtifactKind::Table],
        schema: None,
        arity: Arity::One,
        doc: "the table to filter",
    }];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Table));

    fn validate(config: &FilterConfig, _: &pipeline::Bindings) -> Result<(), String> {
        if let Some(f) = config.sample
            && !(f > 0.0 && f <= 1.0)
        {
            return Err(format!("`sample` must be in (0, 1], not {f}"));
        }
        if config.columns.as_ref().is_some_and(Vec::is_empty) {
            return Err("`columns` is empty: no column would be kept".into());
        }
        Ok(())
    }

    async fn run(&self, config: FilterConfig, ctx: StageContext) -> Result<Output, StageError> {
        let input = ctx.input("input")?.clone();
        tokio::task::spawn_blocking(move || {
            let reader = TableReader::open(&input.dir)?;
            let target = output_schema(&reader.arrow_schema()?, config.columns.as_deref())?;
            ctx.progress
                .set_total(input.content.rows.unwrap_or(0), "rows");
            let mut writer =
                ShardWriter::new(&ctx.out_dir, target.clone(), ShardOptions::default());
            let mut offset = 0u64;
            for file in reader.files() {
                ctx.check_cancelled()?;
                let df = read_shard(file)?;
                let n = df.height() as u64;
                let kept = filter_shard(&config, df, offset)
                    .map_err(|e| StageError::msg(format!("`where`/`columns`: {e}")))?;
                writer.write(&frame_to_batch(&kept, Some(&target))?)?;
                offset += n;
                ctx.progress.inc(n);
            }
            let summary = writer.finish()?;
            ctx.count("rows_in", offset);
            ctx.count("rows_out", summary.rows);
            Ok(Output {
                rows: Some(summary.rows),
                schema: summary.schema_id.clone(),
                meta: summary.meta(),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("filter thread: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_stable_and_close_to_the_fraction() {
        let kept = (0..100_000u64).filter(|&r| unit_hash(7, r) < 0.25).count();
        assert!((24_000..26_000).contains(&kept), "{kept}");
        let again = (0..100_000u64).filter(|&r| unit_hash(7, r) < 0.25).count();
        assert_eq!(kept, again);
        let other_seed = (0..1000u64)
            .filter(|&r| (unit_hash(7, r) < 0.5) != (unit_hash(8, r) < 0.5))
            .count();
        assert!(other_seed > 300, "seeds must give different samples");
    }

    #[test]
    fn condition_sample_and_columns_compose_per_shard() {
        let df = df!("n" => (0i64..100).collect::<Vec<_>>(), "s" => (0..100).map(|i| format!("x{i}")).collect::<Vec<_>>()).unwrap();
        let config = FilterConfig {
            condition: Some("n >= 50".into()),
            sample: None,
            seed: 0,
            columns: Some(vec!["n".into()]),
        };
        let whole = filter_shard(&config, df.clone(), 0).unwrap();
        assert_eq!(whole.height(), 50);
        assert_eq!(whole.get_column_names(), vec!["n"]);
        // Sampling the same rows split into two shards gives the same result.
        let sampled = FilterConfig {
            sample: Some(0.3),
            seed: 3,
            ..config
        };
        let one = filter_shard(&sampled, df.clone(), 0).unwrap();
        let a = filter_shard(&sampled, df.slice(0, 60), 0).unwrap();
        let b = filter_shard(&sampled, df.slice(60, 40), 60).unwrap();
        let mut two = a;
        two.vstack_mut(&b).unwrap();
        assert_eq!(one, two);
        assert!(one.height() > 5 && one.height() < 30, "{}", one.height());
    }
}
