//! Rationale generation over OpenAI-compatible chat-completion APIs.

use pipeline::Registry;

/// Add the LLM stages to `registry`.
pub fn register(_registry: &mut Registry) {}
