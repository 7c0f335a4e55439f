//! Rationale generation over OpenAI-compatible chat-completion APIs (OpenAI, Azure
//! OpenAI, vLLM, SGLang, llama.cpp server, Ollama).
//!
//! Stage kinds (one [`stage::LlmStage`] per [`task::Task`] in [`tasks`]):
//! `rationale.caption` (VLM: `source_image` → `rationale`), `rationale.augment` (LLM:
//! `rationale` → the same rows with augmented prompts) and `rationale.plan` (LLM:
//! `rl_prompt` → `rationale`). All take [`config::LlmConfig`].
//!
//! How a node runs: [`reader`] turns rows into requests and keys ([`request`],
//! [`template`]); the [`online`] executor sends them as slots free up ([`call`]: retry
//! loop; [`gate`]: [`bucket`]s, budgets, [`breaker`], pauses, stop; [`cost`]: what a
//! request can cost; [`backoff`]; [`client`],
//! [`errors`], [`headers`]), or the [`batch`] executor goes through the Batch API;
//! answers are validated ([`answer`], [`schema`]) and committed to the memo
//! ([`memo_writer`]) before they count; [`ledger`] counts tokens, money and progress;
//! [`assemble`] writes the output table, `failures/` and `ledger/` ([`tables`]);
//! [`stage`] applies the failure policy; [`estimate`] is what `reasongen plan` says the
//! node would send and spend. [`mock`] is a loopback OpenAI-compatible
//! server that scripts faults, for tests, benchmarks and users.

mod answer;
mod assemble;
mod backoff;
mod batch;
mod breaker;
mod bucket;
mod call;
mod client;
pub mod config;
mod cost;
mod errors;
mod estimate;
mod failure;
mod gate;
mod headers;
mod ledger;
mod memo_writer;
pub mod mock;
mod online;
mod reader;
mod request;
mod schema;
mod shared;
pub mod stage;
pub mod tables;
pub mod task;
pub mod tasks;
pub mod template;

use pipeline::Registry;
use stage::LlmStage;

/// Add the LLM stages to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(LlmStage::<tasks::caption::Caption>::new());
    registry.register(LlmStage::<tasks::augment::Augment>::new());
    registry.register(LlmStage::<tasks::plan::Plan>::new());
}
