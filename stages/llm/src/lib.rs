//! The OpenAI-compatible client every part of reasongen sends LLM and VLM requests
//! through (OpenAI, Azure OpenAI, vLLM, SGLang, llama.cpp server, Ollama): the rationale
//! stages, and GRPO's judge.
//!
//! A user opens a [`Session`] (one node run: the client, its limits and budgets, the
//! memo of answers, the ledger), builds each request from a [`Shape`] ([`request`],
//! [`template`]; keys that hold everything that shapes an answer), and hands the
//! [`Job`]s to an executor: [`online`] sends them as slots free up ([`call`]: the retry
//! loop; [`gate`]: [`bucket`]s, budgets, [`breaker`], pauses, stop; [`cost`]: what a
//! request can cost; [`backoff`]; [`client`], [`errors`], [`headers`]), or [`batch`]
//! goes through the Batch API. Answers are validated ([`answer`], [`schema`]) and
//! committed to the memo ([`memo_writer`]) before they count; [`ledger`] counts tokens,
//! money and progress; [`tables`] are the failure and ledger tables a stage writes.
//! With the `mock` feature, [`mock`] is a loopback server that scripts faults.

pub mod answer;
pub mod backoff;
pub mod batch;
mod breaker;
mod bucket;
mod call;
pub mod client;
pub mod config;
pub mod cost;
pub mod errors;
pub mod failure;
mod gate;
mod headers;
pub mod ledger;
mod memo_writer;
#[cfg(feature = "mock")]
pub mod mock;
pub mod online;
pub mod request;
mod schema;
mod session;
pub mod tables;
pub mod template;

pub use answer::{Answer, Expect, Spend};
pub use config::LlmConfig;
pub use failure::{Collected, Failure, Job};
pub use request::{Request, Shape};
pub use session::{Session, report as session_report};
