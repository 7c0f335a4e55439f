//! `release.export`: a table as a dataset release in the Hugging Face layout (see
//! `datasets::release`). The same config serves `reasongen export`.

use datasets::release::{CardInfo, ExportOptions, Splits, export};
use datasets::table::ShardOptions;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext,
    StageError,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Config of `release.export`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The licence, as a Hub identifier (`mit`, `apache-2.0`, `cc-by-4.0`, `other`, …).
    pub license: String,
    /// Split names and fractions (they must sum to 1); a row's split is chosen by a
    /// seeded hash of its id, so it keeps its split as the dataset grows.
    #[serde(default = "default_splits")]
    pub splits: BTreeMap<String, f64>,
    /// Seed of the split hash.
    #[serde(default)]
    pub seed: u64,
    /// The dataset's name on its card (default: `recipe/node`).
    #[serde(default)]
    pub name: Option<String>,
    /// A paragraph for the card.
    #[serde(default)]
    pub description: String,
    /// The column that identifies a row.
    #[serde(default = "default_id")]
    pub id_column: String,
    /// Target bytes per Parquet shard (the Hub's writer uses 500 MB).
    #[serde(default = "default_shard_bytes")]
    pub shard_bytes: u64,
}

fn default_splits() -> BTreeMap<String, f64> {
    BTreeMap::from([("train".to_string(), 0.95), ("test".to_string(), 0.05)])
}

fn default_id() -> String {
    "id".into()
}

fn default_shard_bytes() -> u64 {
    500_000_000
}

impl ExportConfig {
    /// The export options, with the card's facts about where the table came from.
    pub fn options(&self, card: CardInfo) -> Result<ExportOptions, String> {
        // Train first when present, then the others by name: the order of assignment.
        let mut splits: Vec<(String, f64)> =
            self.splits.iter().map(|(k, v)| (k.clone(), *v)).collect();
        splits.sort_by_key(|(name, _)| (name != "train", name.clone()));
        Ok(ExportOptions {
            splits: Splits::new(splits, self.seed)?,
            id_column: self.id_column.clone(),
            shard: ShardOptions {
                target_shard_bytes: self.shard_bytes.max(1),
                ..ShardOptions::default()
            },
            card: CardInfo {
                name: self
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}/{}", card.recipe, card.node)),
                description: self.description.clone(),
                license: self.license.clone(),
                ..card
            },
        })
    }
}

pub struct ReleaseExport;

impl Stage for ReleaseExport {
    type Config = ExportConfig;
    const KIND: &'static str = "release.export";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Export a table as a dataset release: Hugging Face layout, dataset card, SHA256SUMS, provenance.";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "table",
        kinds: &[ArtifactKind::Table],
        schema: None,
        arity: Arity::One,
        doc: "the table to publish",
    }];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Release));

    fn validate(config: &ExportConfig, _: &pipeline::Bindings) -> Result<(), String> {
        config.options(CardInfo::default()).map(|_| ())
    }

    async fn run(&self, config: ExportConfig, ctx: StageContext) -> Result<Output, StageError> {
        let input = ctx.input("table")?.clone();
        let options = config
            .options(CardInfo {
                recipe: ctx.recipe.clone(),
                node: ctx.node.clone(),
                run_key: ctx.run_key.to_hex(),
                source: input.digest.to_hex(),
                ..CardInfo::default()
            })
            .map_err(StageError::msg)?;
        tokio::task::spawn_blocking(move || {
            let report = export(&input.dir, &ctx.out_dir, &options)?;
            let splits: serde_json::Map<String, serde_json::Value> = report
                .splits
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        serde_json::json!({"rows": s.rows, "shards": s.shards}),
                    )
                })
                .collect();
            ctx.count("rows", report.rows);
            Ok(Output {
                rows: Some(report.rows),
                schema: None,
                meta: serde_json::json!({"splits": splits}),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("export thread: {e}")))?
    }
}
