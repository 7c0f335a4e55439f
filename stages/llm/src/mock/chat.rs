//! The mock's chat completions: the script's faults, then an answer derived from the
//! request alone (so that any two runs get the same answers): JSON that fits the
//! request's schema (from `response_format`, or a schema quoted in the prompt), else a
//! description that quotes the prompt and counts the bytes of any image (padded or cut
//! to a length drawn from the request when the script sets `answer_tokens`).
//!
//! Usage is counted as a server would: a token per 4 bytes of each message's text, 3
//! per message and 3 per request for the template (OpenAI's accounting), and
//! ⌈W·H / 28²⌉ + 2 per image (Qwen2.5-VL's); an answer longer than `max_tokens` is cut
//! there with `finish_reason=length`.

use super::State;
use super::http::Response;
use super::script::{Fault, RetryAfter};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pipeline::Digest;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

/// What to do with a request.
pub enum Decision {
    Respond(Response),
    Hang,
    Drop,
}

/// The fate of a chat-completion body: a fault of the script, or the answer.
pub fn decide(state: &State, body: &[u8]) -> Decision {
    let digest = Digest::of_bytes(body);
    let seen = {
        let mut seen = state.seen.lock().unwrap_or_else(|p| p.into_inner());
        let n = seen.entry(digest).or_insert(0);
        *n += 1;
        *n
    };
    if seen > 1 {
        state.counters.repeated.fetch_add(1, Relaxed);
    }
    let age = state.started.elapsed();
    let fault = state.script.rules.iter().find(|r| {
        r.when
            .iter()
            .all(|w| body.windows(w.len()).any(|x| x == w.as_bytes()))
            && r.times.is_none_or(|t| seen <= t)
            && r.until.is_none_or(|u| age < u)
    });
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let usage = Usage::of(&request);
    let Some(rule) = fault else {
        if let Some(answerer) = &state.script.answerer {
            return Decision::Respond(match (answerer.0)(&request) {
                Ok(text) => usage.completion(Some(text), "stop"),
                Err(message) => Response::json(
                    400,
                    json!({"error": {"message": message, "type": "invalid_request_error", "code": null}})
                        .to_string(),
                ),
            });
        }
        let mut text = answer(&request, &digest);
        if let (Some((lo, hi)), false) = (state.script.answer_tokens, schema_of(&request).is_some())
        {
            let span = hi.saturating_sub(lo) as usize + 1;
            let drawn = datasets::rng::Rng::new(digest.seed()).below(span);
            fit(&mut text, u64::from(lo) + drawn as u64);
        }
        return Decision::Respond(usage.completion(Some(text), "stop"));
    };
    Decision::Respond(match &rule.fault {
        Fault::Hang => return Decision::Hang,
        Fault::Drop => return Decision::Drop,
        Fault::RateLimited(retry_after) => {
            state.counters.rate_limited.fetch_add(1, Relaxed);
            rate_limited(*retry_after)
        }
        Fault::Status(status, body) => Response::json(*status, body.clone()),
        Fault::InvalidJson => {
            usage.completion(Some(r#"{"short_caption": "unterminated"#.into()), "stop")
        }
        Fault::SchemaViolation => usage.completion(Some(r#"{"unexpected": true}"#.into()), "stop"),
        Fault::Truncated => {
            let mut partial = answer(&request, &digest);
            let half = partial.len() / 2;
            cut(&mut partial, half);
            usage.completion(Some(partial), "length")
        }
        Fault::Empty => usage.completion(None, "stop"),
    })
}

pub fn rate_limited(retry_after: Option<RetryAfter>) -> Response {
    let r = Response::json(
        429,
        r#"{"error":{"message":"Rate limit reached for requests per min. Please try again later.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
    );
    match retry_after {
        None => r,
        Some(RetryAfter::Seconds(s)) => r.with_header("retry-after", s.to_string()),
        Some(RetryAfter::Date(d)) => r.with_header(
            "retry-after",
            httpdate::fmt_http_date(SystemTime::now() + d),
        ),
    }
}

/// Tokens of one answer of this many bytes.
fn tokens_of(bytes: usize) -> u64 {
    bytes as u64 / 4 + 1
}

/// Cut `text` to at most `bytes` bytes, at a character boundary.
fn cut(text: &mut String, mut bytes: usize) {
    if bytes >= text.len() {
        return;
    }
    while !text.is_char_boundary(bytes) {
        bytes -= 1;
    }
    text.truncate(bytes);
}

/// Pad `text` (or cut it) so that it counts `tokens` tokens, never empty.
fn fit(text: &mut String, tokens: u64) {
    let bytes = ((tokens.max(1) as usize - 1) * 4).max(1);
    while text.len() < bytes {
        text.push_str(" lorem");
    }
    cut(text, bytes);
    while tokens_of(text.len()) < tokens {
        text.push(' ');
    }
}

/// What a request counts: its prompt tokens, and the most output tokens it allows.
struct Usage {
    prompt: u64,
    max_tokens: Option<u64>,
}

impl Usage {
    fn of(request: &Value) -> Usage {
        let mut prompt = 3;
        for m in request["messages"].as_array().into_iter().flatten() {
            prompt += 3;
            match &m["content"] {
                Value::String(s) => prompt += (s.len() as u64).div_ceil(4),
                Value::Array(parts) => {
                    for p in parts {
                        if let Some(t) = p["text"].as_str() {
                            prompt += (t.len() as u64).div_ceil(4);
                        }
                        if let Some(url) = p["image_url"]["url"].as_str() {
                            let pixels = url
                                .split_once(";base64,")
                                .and_then(|(_, b64)| STANDARD.decode(b64).ok())
                                .and_then(|b| imagesize::blob_size(&b).ok())
                                .map_or(0, |s| s.width as u64 * s.height as u64);
                            prompt += pixels.div_ceil(28 * 28) + 2;
                        }
                    }
                }
                _ => {}
            }
        }
        Usage {
            prompt,
            max_tokens: request["max_tokens"]
                .as_u64()
                .or_else(|| request["max_completion_tokens"].as_u64()),
        }
    }

    /// A 200 chat completion (`None`: null content), cut at `max_tokens`.
    fn completion(&self, mut content: Option<String>, finish_reason: &str) -> Response {
        let mut finish_reason = finish_reason;
        if let (Some(text), Some(max)) = (content.as_mut(), self.max_tokens)
            && tokens_of(text.len()) > max
        {
            fit(text, max);
            finish_reason = "length";
        }
        let completion_tokens = content.as_ref().map_or(0, |c| tokens_of(c.len()));
        let body = json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "model": "mock",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }],
            "usage": {
                "prompt_tokens": self.prompt,
                "completion_tokens": completion_tokens,
                "total_tokens": self.prompt + completion_tokens,
            },
        });
        Response::json(200, serde_json::to_vec(&body).expect("JSON serialises"))
    }
}

/// The answer to a request, from the request alone.
pub fn answer(request: &Value, digest: &Digest) -> String {
    let tag = &digest.to_hex()[..8];
    if let Some(schema) = schema_of(request) {
        return instance(&schema, "answer", tag).to_string();
    }
    let mut text = String::new();
    let mut image_bytes = None;
    for m in request["messages"].as_array().into_iter().flatten() {
        if m["role"] != "user" {
            continue;
        }
        match &m["content"] {
            Value::String(s) => text.push_str(s),
            Value::Array(parts) => {
                for p in parts {
                    if let Some(t) = p["text"].as_str() {
                        text.push_str(t);
                    }
                    if let Some(url) = p["image_url"]["url"].as_str() {
                        image_bytes = url
                            .split_once(";base64,")
                            .and_then(|(_, b64)| STANDARD.decode(b64).ok())
                            .map(|b| b.len());
                    }
                }
            }
            _ => {}
        }
    }
    let quoted: String = text.chars().take(160).collect();
    let image = image_bytes.map_or(String::new(), |n| format!(" [image of {n} bytes]"));
    format!("Mock description {tag}{image}: {quoted}")
}

/// The schema a request asks its answer to follow: `response_format.json_schema`, or
/// a JSON schema quoted in the system message.
fn schema_of(request: &Value) -> Option<Value> {
    let rf = &request["response_format"]["json_schema"]["schema"];
    if rf.is_object() {
        return Some(rf.clone());
    }
    let system = request["messages"]
        .as_array()?
        .iter()
        .find(|m| m["role"] == "system")?["content"]
        .as_str()?;
    system.match_indices('{').find_map(|(i, _)| {
        let v: Value = serde_json::Deserializer::from_str(&system[i..])
            .into_iter::<Value>()
            .next()?
            .ok()?;
        v.get("properties").is_some().then_some(v)
    })
}

/// A value that fits `schema`, labelled and tagged so that answers differ.
fn instance(schema: &Value, label: &str, tag: &str) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match schema["type"].as_str().unwrap_or("string") {
        "object" => Value::Object(
            schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, sub)| (name.clone(), instance(sub, name, tag)))
                .collect(),
        ),
        "array" => {
            let n = schema["minItems"].as_u64().unwrap_or(0).max(2);
            Value::Array(
                (0..n)
                    .map(|i| instance(&schema["items"], &format!("{label} {i}"), tag))
                    .collect(),
            )
        }
        "integer" => json!(1),
        "number" => json!(0.5),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => Value::String(format!("{label} {tag}")),
    }
}
