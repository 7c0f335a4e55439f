//! A rationale task: which table it reads, its built-in template and placeholders, the
//! shape of its answers, and how an answer becomes an output row. The three tasks are
//! in [`super::tasks`]; [`super::stage::LlmStage`] runs any of them.

use llm::config::LlmConfig;
use llm::cost::TokenCounter;
use llm::request::{Request, Shape};
use llm::template::{Builtin, Template};
use pipeline::{Digest, InputSpec};
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

/// The request shape of task `T`'s rows under `config`.
pub fn shape<T: Task>(config: &LlmConfig, counter: TokenCounter) -> Result<Shape, String> {
    let template = Template::new(&T::TEMPLATE, &config.template, T::SLOTS)?;
    Shape::new(config, template, T::schema(), T::NAME, counter)
}

/// The key and request of a row (`Err`: why the row cannot be sent; its key is then
/// derived from the task and the row id).
pub fn request<T: Task>(shape: &Shape, row: &T::Input) -> (Digest, Result<Request, String>) {
    let bad = |why: String| {
        (
            Digest::of_json(&("bad_input", T::KIND, T::id(row))),
            Err(why),
        )
    };
    let image = match T::image(row) {
        Ok(image) => image,
        Err(why) => return bad(why),
    };
    match shape.build(|slot| T::fill(row, slot), image) {
        Ok((key, request)) => (key, Ok(request)),
        Err(why) => bad(why),
    }
}
