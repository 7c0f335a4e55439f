//! The rationale stages: rationale generation over OpenAI-compatible chat-completion
//! APIs, through the [`llm`] crate's client.
//!
//! Stage kinds (one [`stage::LlmStage`] per [`task::Task`] in [`tasks`]):
//! `rationale.caption` (VLM: `source_image` → `rationale`), `rationale.augment` (LLM:
//! `rationale` → the same rows with augmented prompts) and `rationale.plan` (LLM:
//! `rl_prompt` → `rationale`). All take [`llm::LlmConfig`].
//!
//! How a node runs: [`reader`] turns rows into requests and keys (through the task's
//! template and [`llm::Shape`]); the session's online or batch executor makes sure the
//! memo holds an answer for each; [`assemble`] writes the output table, `failures/` and
//! `ledger/` ([`llm::tables`]); [`stage`] applies the failure policy; [`estimate`] is
//! what `reasongen plan` says the node would send and spend.

mod assemble;
mod estimate;
mod reader;
pub mod stage;
pub mod task;
pub mod tasks;

use pipeline::Registry;
use stage::LlmStage;

/// Add the LLM stages to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(LlmStage::<tasks::caption::Caption>::new());
    registry.register(LlmStage::<tasks::augment::Augment>::new());
    registry.register(LlmStage::<tasks::plan::Plan>::new());
}
