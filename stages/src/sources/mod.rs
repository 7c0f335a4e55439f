//! Source stages: data entering the store from outside it, as typed tables.
//!
//! - [`image_folder`] (`source.image_folder`): a folder of images with sidecar captions
//!   → `source_image`;
//! - [`table`] (`source.table`): Parquet or JSONL files whose columns are mapped onto
//!   one of our schemas;
//! - [`reasongen_sft`] (`source.reasongen_sft`): the published ReasonGen-R1-SFT-230k
//!   Parquet as it is → `sft_sample`;
//! - [`prompts`] (`source.prompts`): prompt lists (`.txt`, `.jsonl`) → `rl_prompt`;
//! - [`benchmark`] (`source.benchmark`): GenEval's, DPG-Bench's or T2I-CompBench's
//!   prompts, built in → `rl_prompt`.
//!
//! Each stage module holds its config, its `Stage` impl and a plain `write_*` function
//! that takes paths and writes the table, so that the work can be tested (and reused)
//! without the engine. The shared parts: listing and hashing the source files
//! ([`files`]), numbered text lines ([`lines`]), reading Parquet and JSONL in batches
//! ([`read`]), and mapping columns onto a schema ([`mapping`], with image cells in
//! [`images`]). Everything streams in batches; no source is held whole.

pub(crate) mod files;
mod images;
mod lines;
mod mapping;
mod read;

pub mod benchmark;
pub mod image_folder;
pub mod prompts;
pub mod reasongen_sft;
pub mod table;

pub use files::Format;
pub use mapping::IdRule;

use pipeline::{Registry, StageError};

/// Add every source stage to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(image_folder::ImageFolder);
    registry.register(table::SourceTable);
    registry.register(reasongen_sft::ReasonGenSft);
    registry.register(prompts::Prompts);
    registry.register(benchmark::Benchmark);
}

/// Where a `write_*` function reports as it goes (the engine's progress tracker).
pub use pipeline::Tracker;

/// Rows per written batch.
const BATCH_ROWS: usize = 256;

/// Run a blocking `write_*` call off the async runtime.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, StageError> + Send + 'static,
) -> Result<T, StageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StageError::msg(format!("{what} thread: {e}")))?
}

/// The stage output of a written table of schema `def`.
fn output(summary: &datasets::table::TableSummary, def: &schemas::SchemaDef) -> pipeline::Output {
    pipeline::Output {
        rows: Some(summary.rows),
        schema: Some(def.id().to_string()),
        meta: summary.meta(),
    }
}
