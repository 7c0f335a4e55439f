//! The rationale tasks of `research/paper.md` §1.1, each a [`Task`](super::task::Task):
//!
//! - [`caption`] (`rationale.caption`, VLM): image → its rationale, the dense detailed
//!   caption the model learns to write before drawing;
//! - [`augment`] (`rationale.augment`, LLM): detailed caption → augmented prompts in
//!   the five families of ReasonGen-R1-SFT-230k (structured output);
//! - [`plan`] (`rationale.plan`, LLM): prompt → rationale, for prompt-only data.

pub mod augment;
pub mod caption;
pub mod plan;

use serde_json::Value;

/// An answer of a text task as text.
fn text(answer: Value) -> Result<String, String> {
    match answer {
        Value::String(s) => Ok(s),
        other => Err(format!("expected a text answer, got {other}")),
    }
}
