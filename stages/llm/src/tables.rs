//! The two side tables an LLM stage writes beside its main table, in sub-folders so
//! that the main folder's `part-*.parquet` stay one table of one schema:
//!
//! - `failures/part-*.parquet` (`llm_failure@1`): one row per input row that has no
//!   output row: its id, request key, reason (an error class such as `context_length`,
//!   `schema_mismatch`, `not_sent`), message, the raw text the server sent (error body
//!   or invalid answer, cut at 4 KiB, secrets removed) and the attempts made;
//! - `ledger/part-*.parquet` (`llm_ledger@1`): one row per input row: id, request key,
//!   `answered` or `failed`, and the input and output tokens and cost of its answer
//!   (for a failed row: of its failed attempts in this run).
//!
//! Both are in input order, like the main table.

use arrow::datatypes::{DataType, Field};
use schemas::{Row, SchemaDef};
use serde::{Deserialize, Serialize};

/// Folder of the failures table inside the artifact.
pub const FAILURES_DIR: &str = "failures";
/// Folder of the ledger table inside the artifact.
pub const LEDGER_DIR: &str = "ledger";

pub const FAILURE_SCHEMA: SchemaDef = SchemaDef {
    name: "llm_failure",
    version: 1,
    doc: "An input row of an LLM stage that has no output row, with the reason.",
    fields: failure_fields,
    added: &[],
};

fn failure_fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("request_key", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, true),
        Field::new("attempts", DataType::UInt32, false),
    ]
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureRow {
    pub id: String,
    pub request_key: String,
    pub reason: String,
    pub message: String,
    pub raw: Option<String>,
    pub attempts: u32,
}

impl Row for FailureRow {
    const SCHEMA: &'static SchemaDef = &FAILURE_SCHEMA;
}

pub const LEDGER_SCHEMA: SchemaDef = SchemaDef {
    name: "llm_ledger",
    version: 1,
    doc: "Tokens and cost of each input row of an LLM stage.",
    fields: ledger_fields,
    added: &[],
};

fn ledger_fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("request_key", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("input_tokens", DataType::UInt64, false),
        Field::new("output_tokens", DataType::UInt64, false),
        Field::new("cost_usd", DataType::Float64, false),
    ]
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub id: String,
    pub request_key: String,
    /// `answered` or `failed`.
    pub status: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

impl Row for LedgerRow {
    const SCHEMA: &'static SchemaDef = &LEDGER_SCHEMA;
}
