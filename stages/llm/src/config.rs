//! The config every LLM stage takes: the endpoint, sampling, the template override,
//! limits and retries, the circuit breaker, prices and budget, the failure policy, and
//! the executor (online requests or the Batch API).
//!
//! Every table is `deny_unknown_fields`; everything here enters the node's run key, and
//! what shapes a request (endpoint URL and model, sampling, template, structured-output
//! mode) also enters each request's key. The API key never appears: the config names
//! the environment variable that holds it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Config of the `rationale.*` stages.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// The OpenAI-compatible server and model.
    pub endpoint: EndpointConfig,
    /// Sampling parameters sent with every request.
    #[serde(default)]
    pub sampling: SamplingConfig,
    /// Replace the task's built-in template (give `version` when you change its text).
    #[serde(default)]
    pub template: TemplateConfig,
    /// Tasks with JSON answers (`rationale.augment`): how the schema reaches the server.
    /// `json_schema` (default: `response_format` with the schema, strict), `json_object`
    /// (`response_format = {type = "json_object"}`, for servers without schemas) or
    /// `prompt` (the schema only in the prompt). Answers are validated in every mode.
    #[serde(default)]
    pub structured: Option<Structured>,
    /// Concurrency, rate limits, retries and the circuit breaker.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Price per million tokens, by model name, for the ledger and the budget.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// Never spend more than this (USD) in one run of the node: a request is sent only
    /// while what is spent plus the worst case of every request in flight, its own
    /// included, stays within it. Needs the model's price and `sampling.max_tokens`.
    /// Rows left unsent are `not_sent` failures, which a run with a higher cap sends.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// How a request's worst-case cost is bounded before it is sent.
    #[serde(default)]
    pub cost: CostConfig,
    /// `"require_all"` (default): the stage fails if any row fails, after writing the
    /// failures to the run's log folder. `{ allow_failures = 0.05 }`: the stage succeeds
    /// while at most that fraction of rows failed; failures are a table in the artifact.
    #[serde(default)]
    pub policy: Policy,
    /// `online` (default): chat-completion requests; `batch`: the Batch API.
    #[serde(default)]
    pub executor: Executor,
    /// Settings of the batch executor.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Seconds between progress lines in the run's events.
    #[serde(default = "default_progress_secs")]
    pub progress_secs: f64,
}

fn default_progress_secs() -> f64 {
    10.0
}

/// Where requests go.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// The API root, to which `/chat/completions` is appended: `https://api.openai.com/v1`,
    /// `http://localhost:8000/v1` (vLLM, SGLang), `http://localhost:8080/v1` (llama.cpp
    /// server), `http://localhost:11434/v1` (Ollama), or
    /// `https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT` (Azure OpenAI, with
    /// `auth = "api_key"` and `query = { api-version = "..." }`).
    pub base_url: String,
    /// The model name sent in each request (and recorded in provenance).
    pub model: String,
    /// Name of the environment variable that holds the API key; none for servers that
    /// take no key. The value never enters the store, the events or the logs.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// How the key is sent: `bearer` (`Authorization: Bearer`, default) or `api_key`
    /// (the `api-key` header of Azure OpenAI).
    #[serde(default)]
    pub auth: Auth,
    /// Query parameters added to every URL (Azure: `{ api-version = "2024-10-21" }`).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Extra headers sent with every request (not secrets: they are in the config).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers whose values come from environment variables: header → variable name.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, String>,
    /// Seconds before a request without an answer counts as timed out (and is retried).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
}

fn default_timeout_secs() -> f64 {
    120.0
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    #[default]
    Bearer,
    ApiKey,
}

/// Sampling parameters; all of them are part of each request's key.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Sent as `max_tokens`; an answer cut at this length is retried, then a failure.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Other request-body keys, sent as they are (vLLM's `top_k`,
    /// `max_completion_tokens` for reasoning models, …).
    #[serde(default)]
    pub extra: BTreeMap<String, Value>,
}

/// A replacement for the task's built-in template. Placeholders are `{name}`; `{{` and
/// `}}` are literal braces.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Name recorded in provenance (default: the built-in template's).
    #[serde(default)]
    pub name: Option<String>,
    /// Version recorded in provenance and in each request's key; required when
    /// `system` or `user` is given.
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Structured {
    JsonSchema,
    JsonObject,
    Prompt,
}

/// Concurrency, rate limits, retries and the circuit breaker.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests in flight at most (also the node's `llm_slots`).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<f64>,
    /// Tokens (input + output) per minute.
    #[serde(default)]
    pub tpm: Option<f64>,
    /// Input tokens per minute.
    #[serde(default)]
    pub input_tpm: Option<f64>,
    /// Output tokens per minute.
    #[serde(default)]
    pub output_tpm: Option<f64>,
    /// Adopt the limits a server announces in `x-ratelimit-*` headers (when lower).
    #[serde(default = "yes")]
    pub learn_from_headers: bool,
    /// Attempts per request across transient errors (429, 5xx, timeouts, dropped
    /// connections).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Answers per request that fail validation (invalid JSON, schema mismatch,
    /// `finish_reason=length`, empty content) before the row fails.
    #[serde(default = "default_max_invalid")]
    pub max_invalid: u32,
    /// First backoff in seconds; doubles per attempt, with full jitter.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_secs: f64,
    /// Longest backoff in seconds.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: f64,
    /// Longest `Retry-After` honoured, in seconds.
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after_secs: f64,
    #[serde(default)]
    pub breaker: BreakerConfig,
}

fn default_concurrency() -> u32 {
    64
}
fn yes() -> bool {
    true
}
fn default_max_attempts() -> u32 {
    8
}
fn default_max_invalid() -> u32 {
    3
}
fn default_backoff_initial() -> f64 {
    1.0
}
fn default_backoff_max() -> f64 {
    60.0
}
fn default_max_retry_after() -> f64 {
    600.0
}

impl Default for LimitsConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("limits have defaults")
    }
}

/// The circuit breaker: when at least `error_rate` of the last `window` attempts failed
/// with transient errors, stop sending for `pause_secs` (doubling on each trip up to
/// `max_pause_secs`), then send one probe; give up after `max_trips` trips in a row.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    #[serde(default = "default_window")]
    pub window: u32,
    #[serde(default = "default_error_rate")]
    pub error_rate: f64,
    #[serde(default = "default_pause")]
    pub pause_secs: f64,
    #[serde(default = "default_max_pause")]
    pub max_pause_secs: f64,
    #[serde(default = "default_max_trips")]
    pub max_trips: u32,
}

fn default_window() -> u32 {
    50
}
fn default_error_rate() -> f64 {
    0.5
}
fn default_pause() -> f64 {
    5.0
}
fn default_max_pause() -> f64 {
    120.0
}
fn default_max_trips() -> u32 {
    8
}

impl Default for BreakerConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("breaker has defaults")
    }
}

/// How input tokens are counted for the budget and for `reasongen plan`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// The model's `tokenizer.json` (relative to the recipe), to count input tokens
    /// exactly; without it they are bounded by the text's bytes.
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Tokens to reserve per image (default: ⌈W·H / 28²⌉ + 2, at least 1,445).
    #[serde(default)]
    pub image_tokens: Option<u64>,
}

/// USD per million tokens.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    /// What these tokens cost, in USD.
    pub fn usd(&self, input_tokens: f64, output_tokens: f64) -> f64 {
        (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    #[default]
    RequireAll,
    /// The largest fraction of rows that may fail.
    AllowFailures(f64),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    #[default]
    Online,
    Batch,
}

/// The Batch API executor.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Seconds between polls of an open batch.
    #[serde(default = "default_poll")]
    pub poll_secs: f64,
    /// Requests per batch file at most (OpenAI: 50 000).
    #[serde(default = "default_batch_requests")]
    pub max_requests: u32,
    /// Bytes per batch file at most (OpenAI: 200 MB); one file is built in memory.
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: u64,
    /// Rounds of submission: requests that expired, failed or answered invalidly are
    /// submitted again in the next round.
    #[serde(default = "default_rounds")]
    pub max_rounds: u32,
    #[serde(default = "default_window_text")]
    pub completion_window: String,
    /// The `endpoint` of the batch and `url` of each line (Azure: `/chat/completions`).
    #[serde(default = "default_batch_endpoint")]
    pub endpoint: String,
    /// Factor applied to `prices` for batch requests (OpenAI: half price).
    #[serde(default = "default_discount")]
    pub price_factor: f64,
}

fn default_poll() -> f64 {
    30.0
}
fn default_batch_requests() -> u32 {
    50_000
}
fn default_batch_bytes() -> u64 {
    100_000_000
}
fn default_rounds() -> u32 {
    4
}
fn default_window_text() -> String {
    "24h".into()
}
fn default_batch_endpoint() -> String {
    "/v1/chat/completions".into()
}
fn default_discount() -> f64 {
    0.5
}

impl Default for BatchConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("batch has defaults")
    }
}

impl LlmConfig {
    /// Checks beyond the types, with the config key at fault in each message.
    /// `json_answers`: whether the task answers in JSON.
    pub fn check(&self, json_answers: bool) -> Result<(), String> {
        let e = &self.endpoint;
        match reqwest::Url::parse(&e.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(format!(
                    "endpoint.base_url `{}` is not an http(s) URL",
                    e.base_url
                ));
            }
        }
        if e.model.trim().is_empty() {
            return Err("endpoint.model is empty".into());
        }
        positive("endpoint.timeout_secs", e.timeout_secs)?;
        if self.structured.is_some() && !json_answers {
            return Err("`structured` applies to tasks with JSON answers only".into());
        }
        let l = &self.limits;
        if l.concurrency == 0 {
            return Err("limits.concurrency must be at least 1".into());
        }
        if l.max_attempts == 0 || l.max_invalid == 0 {
            return Err("limits.max_attempts and limits.max_invalid must be at least 1".into());
        }
        for (key, v) in [
            ("limits.rpm", l.rpm),
            ("limits.tpm", l.tpm),
            ("limits.input_tpm", l.input_tpm),
            ("limits.output_tpm", l.output_tpm),
            ("budget_usd", self.budget_usd),
        ] {
            if let Some(v) = v {
                positive(key, v)?;
            }
        }
        positive("limits.backoff_initial_secs", l.backoff_initial_secs)?;
        positive("limits.backoff_max_secs", l.backoff_max_secs)?;
        positive("limits.max_retry_after_secs", l.max_retry_after_secs)?;
        positive("progress_secs", self.progress_secs)?;
        let b = &l.breaker;
        if b.window == 0 || !(b.error_rate > 0.0 && b.error_rate <= 1.0) {
            return Err("limits.breaker: window must be ≥ 1 and error_rate in (0, 1]".into());
        }
        if let Policy::AllowFailures(f) = self.policy
            && !(0.0..=1.0).contains(&f)
        {
            return Err(format!(
                "policy.allow_failures = {f}: give a fraction in [0, 1]"
            ));
        }
        if self.budget_usd.is_some() {
            self.bounded("budget_usd")?;
        }
        if self.executor == Executor::Batch {
            let bc = &self.batch;
            positive("batch.poll_secs", bc.poll_secs)?;
            if !(bc.price_factor.is_finite() && bc.price_factor >= 0.0) {
                return Err(format!(
                    "batch.price_factor = {}: must be ≥ 0",
                    bc.price_factor
                ));
            }
            if bc.max_requests == 0 || bc.max_bytes == 0 || bc.max_rounds == 0 {
                return Err(
                    "batch.max_requests, batch.max_bytes and batch.max_rounds must be ≥ 1".into(),
                );
            }
        }
        Ok(())
    }

    /// Whether each request's cost has a bound (the model's price and an answer
    /// length), as a budget (named by `what`) needs.
    pub fn bounded(&self, what: &str) -> Result<(), String> {
        let model = &self.endpoint.model;
        if !self.prices.contains_key(model) {
            return Err(format!(
                "{what} needs the price of `{model}`: add prices.\"{model}\" = {{ input_per_mtok = …, output_per_mtok = … }}"
            ));
        }
        if self.max_output_tokens().is_none() {
            return Err(format!(
                "{what} needs a bound on each answer's length to bound its cost: set sampling.max_tokens"
            ));
        }
        Ok(())
    }

    /// The most output tokens an answer may have: `sampling.max_tokens`, or
    /// `max_completion_tokens` in `sampling.extra` (reasoning models).
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.sampling.max_tokens.map(u64::from).or_else(|| {
            self.sampling
                .extra
                .get("max_completion_tokens")
                .and_then(Value::as_u64)
        })
    }

    /// The price of the configured model, if the table has it.
    pub fn price(&self) -> Option<Price> {
        self.prices.get(&self.endpoint.model).copied()
    }

    /// The factor on `prices` for this executor (the Batch API's discount).
    pub fn price_factor(&self) -> f64 {
        match self.executor {
            Executor::Online => 1.0,
            Executor::Batch => self.batch.price_factor,
        }
    }
}

fn positive(key: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("{key} = {v}: must be a positive number"))
    }
}
