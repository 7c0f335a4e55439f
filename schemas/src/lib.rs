//! Table schemas: the Arrow schema and the Rust row type of every table the engine
//! writes, their identity (`name@version`), the Hugging Face features JSON that makes
//! `datasets` see images as its `Image` feature, and the rules for reading tables
//! written by older schema versions.
//!
//! Every Parquet shard carries its schema id under [`SCHEMA_METADATA_KEY`] and its
//! features under [`HF_METADATA_KEY`] in the file's key-value metadata. This crate does
//! no I/O: it describes data and converts rows to and from Arrow record batches.

mod common;
mod def;
mod evolution;
mod features;
mod id;
mod rows;

pub mod eval_sample;
pub mod eval_score;
pub mod rationale;
pub mod rl_prompt;
pub mod rollout;
pub mod sft_sample;
pub mod source_image;

pub use common::{AugmentedPrompts, ImageData, Provenance, image_type, is_image_type};
pub use def::{ALL, SchemaDef, find, nullable_field, nullable_type};
pub use evolution::{Conformance, EvolutionError, adapt, conform};
pub use features::hf_features;
pub use id::{BadSchemaId, SchemaId};
pub use rows::{Row, RowError, columns_from_batch, from_batch, to_batch};

/// Parquet key-value metadata key holding the schema id (`name@version`).
pub const SCHEMA_METADATA_KEY: &str = "reasongen.schema";
/// Parquet key-value metadata key holding the Hugging Face features JSON.
pub const HF_METADATA_KEY: &str = "huggingface";
