//! A rationale task: which table it reads, its built-in template and placeholders, the
//! shape of its answers, and how an answer becomes an output row. The three tasks are
//! in [`super::tasks`]; [`super::stage::LlmStage`] runs any of them.

use super::template::Builtin;
use pipeline::InputSpec;
use schemas::rationale::Rationale;
use schemas::{Provenance, Row};
use serde_json::Value;

pub trait Task: Send + Sync + 'static {
    /// The rows the task reads.
    type Input: Row + Send + 'static;
    /// The stage kind (`rationale.caption`).
    const KIND: &'static str;
    /// The task recorded in provenance (`caption`).
    const NAME: &'static str;
    const DOC: &'static str;
    /// Exactly one input.
    const INPUTS: &'static [InputSpec];
    const TEMPLATE: Builtin;
    /// Placeholders the templates may use.
    const SLOTS: &'static [&'static str];

    /// The JSON schema of answers; `None` for text answers.
    fn schema() -> Option<Value> {
        None
    }

    /// The row's id (for messages and the failures table).
    fn id(row: &Self::Input) -> &str;

    /// The value of placeholder `slot` (one of [`Self::SLOTS`]) for a row.
    fn fill(row: &Self::Input, slot: &str) -> String;

    /// The image the request shows the model, if the task sends one; `Err` when the row
    /// cannot become a request.
    fn image(_row: &Self::Input) -> Result<Option<&[u8]>, String> {
        Ok(None)
    }

    /// The output row made of an input row and its answer (text, or JSON matching
    /// [`Self::schema`]).
    fn output(row: Self::Input, answer: Value, provenance: Provenance)
    -> Result<Rationale, String>;
}
