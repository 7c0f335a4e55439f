//! `source.reasongen_sft`: the published ReasonGen-R1-SFT-230k dataset
//! (`research/paper.md` §1.1) read as it is into `sft_sample` rows.
//!
//! `rationale` = `detailed_caption`; `prompts` = `augmented_prompts` (its fields matched
//! by name: the published struct orders them differently); `image` from a base64
//! string, a data URL or an image struct, its bytes kept as they are; `image_codes`
//! and `tokenizer` null; one provenance entry `{task: "published", model: the
//! dataset}`. A row without an `id` (or with an empty one) gets `h` + the first 16 hex
//! digits of the sha256 of its rationale and image bytes: stable whatever the files'
//! order or sharding (identical rows share an id). Other columns (`brief_caption`,
//! `augmented_cots`, `pil_image`, …) are not read. This is `source.table`'s reading
//! and mapping with a fixed column map.

use super::files;
use super::mapping::{Fill, Mapping};
use super::table::write_mapped;
use super::{Tracker, output};
use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::Schema;
use datasets::table::TableSummary;
use pipeline::store::FileHasher;
use pipeline::{
    ArtifactType, Digest, InputSpec, Output, OutputDecl, Stage, StageContext, StageError,
};
use schemars::JsonSchema;
use schemas::Provenance;
use schemas::sft_sample::{SCHEMA, SftSample};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Config of `source.reasongen_sft`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonGenSftConfig {
    /// A Parquet (or JSONL) file of the dataset, or a folder of them (its `data/`),
    /// read in name order; relative to the recipe's folder.
    pub path: String,
    /// The dataset named as the `model` of each row's provenance.
    #[serde(default = "default_dataset")]
    pub dataset: String,
}

fn default_dataset() -> String {
    "Franklin0/ReasonGen-R1-SFT-230k".to_string()
}

/// The provenance of a published row, as a one-row array of the column's type.
fn provenance(dataset: &str) -> Result<ArrayRef, StageError> {
    let row = SftSample {
        provenance: vec![Provenance {
            task: "published".into(),
            model: dataset.to_string(),
            template: String::new(),
            template_version: 0,
            request_key: String::new(),
        }],
        ..SftSample::default()
    };
    let batch = schemas::to_batch(&[row])?;
    Ok(batch
        .column_by_name("provenance")
        .expect("sft_sample has provenance")
        .clone())
}

fn mapping(dataset: &str) -> Result<Mapping, StageError> {
    let mut m = Mapping::new(&SCHEMA);
    let column = |name: &str, required| Fill::Column {
        name: name.to_string(),
        required,
    };
    let fills = [
        ("id", column("id", false)),
        ("rationale", column("detailed_caption", true)),
        ("prompts", column("augmented_prompts", true)),
        ("image", column("image", true)),
        ("image_codes", Fill::Null),
        ("tokenizer", Fill::Null),
        ("provenance", Fill::Constant(provenance(dataset)?)),
    ];
    for (target, fill) in fills {
        m.set(target, fill).map_err(StageError::msg)?;
    }
    Ok(m)
}

/// The id of a row without one: a hash of its rationale and image bytes.
fn content_id(rationale: &str, image: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(8 + rationale.len() + image.len());
    bytes.extend_from_slice(&(rationale.len() as u64).to_le_bytes());
    bytes.extend_from_slice(rationale.as_bytes());
    bytes.extend_from_slice(image);
    format!("h{}", &Digest::of_bytes(&bytes).to_hex()[..16])
}

/// Fill missing or empty ids (`columns` in `schema`'s order) with content ids.
fn fill_ids(columns: &mut [ArrayRef], schema: &Schema) {
    let at = |name| schema.index_of(name).expect("an sft_sample column");
    let (id, rationale, image) = (at("id"), at("rationale"), at("image"));
    let ids = columns[id].as_string::<i32>();
    let texts = columns[rationale].as_string::<i32>();
    let images = columns[image].as_struct().column(0).as_binary::<i32>();
    let filled = (0..ids.len()).map(|i| match ids.is_valid(i) && !ids.value(i).is_empty() {
        true => ids.value(i).to_string(),
        false => content_id(texts.value(i), images.value(i)),
    });
    columns[id] = Arc::new(StringArray::from_iter_values(filled));
}

/// Read the published dataset files `config` names into an `sft_sample` table in
/// `out_dir`.
pub fn write_reasongen_sft(
    config: &ReasonGenSftConfig,
    recipe_dir: &Path,
    out_dir: &Path,
    tracker: &impl Tracker,
) -> Result<TableSummary, StageError> {
    let mapping = mapping(&config.dataset)?;
    let sources = files::tables(&config.path, None, recipe_dir)?;
    let schema = mapping.schema().clone();
    write_mapped(&sources, &mapping, out_dir, tracker, |columns| {
        fill_ids(columns, &schema)
    })
}

pub struct ReasonGenSft;

impl Stage for ReasonGenSft {
    type Config = ReasonGenSftConfig;
    const KIND: &'static str = "source.reasongen_sft";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Read the published ReasonGen-R1-SFT-230k Parquet as it is into sft_sample rows (rationale = detailed_caption, prompts = augmented_prompts, image bytes decoded).";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("sft_sample"));

    fn externals(
        config: &ReasonGenSftConfig,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        files::table_digests(&config.path, None, files, recipe_dir)
    }

    async fn run(
        &self,
        config: ReasonGenSftConfig,
        ctx: StageContext,
    ) -> Result<Output, StageError> {
        super::blocking("source.reasongen_sft", move || {
            let summary = write_reasongen_sft(&config, &ctx.recipe_dir, &ctx.out_dir, &ctx)?;
            ctx.count("rows", summary.rows);
            Ok(output(&summary, &SCHEMA))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ids_are_stable_and_depend_on_both_parts() {
        let a = content_id("a red cube", b"png");
        assert_eq!(a, content_id("a red cube", b"png"));
        assert_eq!(a.len(), 17);
        assert_ne!(a, content_id("a red cube", b"jpg"));
        // The length prefix keeps the split between the parts.
        assert_ne!(content_id("ab", b"c"), content_id("a", b"bc"));
    }
}
