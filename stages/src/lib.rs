//! Data stages: generic ones (external commands, table import and filtering), the LLM
//! rationale tasks (over the `llm` crate's client), image preparation, pairing, the
//! shapes world's data and release export.
//!
//! Each stage is one module with its config type and its `Stage` impl; [`register`]
//! adds them all to a registry.

pub mod command;
pub mod images;
pub mod pair;
pub mod rationale;
pub mod release_export;
pub mod shapes;
pub mod sources;
pub mod table_filter;
pub mod table_import;

use pipeline::Registry;

/// Add every stage of this crate to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(command::Command);
    registry.register(table_import::TableImport);
    registry.register(table_filter::TableFilter);
    registry.register(release_export::ReleaseExport);
    registry.register(pair::PairSft);
    sources::register(registry);
    images::register(registry);
    shapes::register(registry);
    rationale::register(registry);
}
