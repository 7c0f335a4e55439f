//! The HTTP client for OpenAI-compatible servers: one connection pool per node (kept
//! alive and reused across requests), the key and secret headers read from the
//! environment variables the config names (marked sensitive, registered with the
//! redactor, never in a request key), and chat completions parsed into content,
//! `finish_reason`, `usage` and the rate-limit headers.
//!
//! reqwest's own retries are off: every attempt goes through the gate, is counted and
//! is charged.

use super::config::{Auth, EndpointConfig};
use super::errors::{ErrorClass, classify_status, classify_transport, describe, truncate};
use super::headers::RateHeaders;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// Raw text kept for failure rows, at most this many bytes.
pub const RAW_LIMIT: usize = 4096;

/// A chat completion.
#[derive(Debug)]
pub struct Reply {
    pub content: Option<String>,
    pub refusal: Option<String>,
    pub finish_reason: Option<String>,
    /// Input and output tokens, as the server reported them.
    pub usage: Option<(u64, u64)>,
    pub headers: RateHeaders,
}

/// An attempt that got no chat completion.
#[derive(Debug)]
pub struct CallError {
    pub class: ErrorClass,
    pub message: String,
    /// The body or answer text, for the failures table.
    pub raw: Option<String>,
    /// Boxed: errors are rare, and a small `Err` keeps every `Result` small.
    pub headers: Box<RateHeaders>,
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// A parsed chat completion body (also the `body` of a Batch API output line).
pub fn parse_completion(body: &[u8], headers: RateHeaders) -> Result<Reply, CallError> {
    let c: Completion = serde_json::from_slice(body).map_err(|e| CallError {
        class: ErrorClass::InvalidJson,
        message: format!("the response is not a chat completion: {e}"),
        raw: Some(truncate(&String::from_utf8_lossy(body), RAW_LIMIT)),
        headers: Box::new(headers),
    })?;
    let usage = c.usage.map(|u| (u.prompt_tokens, u.completion_tokens));
    let first = c.choices.into_iter().next();
    let finish_reason = first.as_ref().and_then(|c| c.finish_reason.clone());
    let message = first.and_then(|c| c.message);
    Ok(Reply {
        content: message.as_ref().and_then(|m| m.content.clone()),
        refusal: message.and_then(|m| m.refusal),
        finish_reason,
        usage,
        headers,
    })
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    query: Vec<(String, String)>,
    chat: reqwest::Url,
}

/// The value of environment variable `name`, named by config key `key`.
fn env_value(key: &str, name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| {
        format!("{key} names the environment variable `{name}`, which is not set (or not UTF-8)")
    })
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header name `{name}`: {e}"))
}

/// A header value that is never printed (reqwest and hyper skip sensitive values in
/// their debug output).
fn secret_value(value: &str, what: &str) -> Result<HeaderValue, String> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| format!("{what} holds characters not allowed in an HTTP header"))?;
    v.set_sensitive(true);
    Ok(v)
}

impl Client {
    /// A client for `endpoint` with a pool of `connections`; `add_secret` receives every
    /// secret read from the environment (the stage registers them with the redactor).
    pub fn new(
        endpoint: &EndpointConfig,
        connections: usize,
        add_secret: &dyn Fn(&str),
    ) -> Result<Client, String> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &endpoint.headers {
            let v = HeaderValue::from_str(value)
                .map_err(|e| format!("endpoint.headers.{name}: {e}"))?;
            headers.insert(header_name(name)?, v);
        }
        for (name, var) in &endpoint.secret_headers {
            let value = env_value(&format!("endpoint.secret_headers.{name}"), var)?;
            add_secret(&value);
            headers.insert(
                header_name(name)?,
                secret_value(&value, &format!("variable `{var}`"))?,
            );
        }
        if let Some(var) = &endpoint.api_key_env {
            let key = env_value("endpoint.api_key_env", var)?;
            add_secret(&key);
            let what = format!("variable `{var}`");
            match endpoint.auth {
                Auth::Bearer => headers.insert(
                    AUTHORIZATION,
                    secret_value(&format!("Bearer {key}"), &what)?,
                ),
                Auth::ApiKey => headers.insert(
                    HeaderName::from_static("api-key"),
                    secret_value(&key, &what)?,
                ),
            };
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs_f64(endpoint.timeout_secs))
            .connect_timeout(Duration::from_secs_f64(endpoint.timeout_secs.min(30.0)))
            .pool_max_idle_per_host(connections)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .retry(reqwest::retry::never())
            .build()
            .map_err(|e| format!("HTTP client: {}", describe(&e)))?;
        let base = endpoint.base_url.trim_end_matches('/').to_string();
        let query: Vec<(String, String)> = endpoint
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let chat = url(&base, &query, "/chat/completions")?;
        Ok(Client {
            http,
            base,
            query,
            chat,
        })
    }

    /// `base_url` + `path`, with the configured query parameters.
    pub fn url(&self, path: &str) -> Result<reqwest::Url, String> {
        url(&self.base, &self.query, path)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// One chat-completion attempt.
    pub async fn chat(&self, body: Vec<u8>) -> Result<Reply, CallError> {
        let response = self
            .http
            .post(self.chat.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| transport(&e, RateHeaders::default()))?;
        let (status, headers, body) = read(response).await?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, &body, headers));
        }
        parse_completion(&body, headers)
    }
}

/// Status, rate-limit headers and body of a response.
pub async fn read(
    response: reqwest::Response,
) -> Result<(u16, RateHeaders, impl std::ops::Deref<Target = [u8]>), CallError> {
    let status = response.status().as_u16();
    let headers = RateHeaders::parse(response.headers(), SystemTime::now());
    match response.bytes().await {
        Ok(body) => Ok((status, headers, body)),
        Err(e) => Err(transport(&e, headers)),
    }
}

/// The error of a non-2xx response.
pub fn status_error(status: u16, body: &[u8], headers: RateHeaders) -> CallError {
    let (class, message) = classify_status(status, body);
    CallError {
        class,
        message,
        raw: Some(truncate(&String::from_utf8_lossy(body), RAW_LIMIT)),
        headers: Box::new(headers),
    }
}

/// The error of a request that got no (complete) response.
pub fn transport(e: &reqwest::Error, headers: RateHeaders) -> CallError {
    CallError {
        class: classify_transport(e),
        message: describe(e),
        raw: None,
        headers: Box::new(headers),
    }
}

fn url(base: &str, query: &[(String, String)], path: &str) -> Result<reqwest::Url, String> {
    let mut u = reqwest::Url::parse(&format!("{base}{path}"))
        .map_err(|e| format!("endpoint.base_url `{base}`: {e}"))?;
    if !query.is_empty() {
        u.query_pairs_mut().extend_pairs(query);
    }
    Ok(u)
}
