//! Why a request did not give an answer, and what to do about it.
//!
//! Servers disagree on error bodies: OpenAI and Azure OpenAI send
//! `{"error": {"message", "type", "code"}}` (Azure's `code` may be a number as text);
//! vLLM and SGLang send `{"object": "error", "message", "type", "code": 400}` (newer vLLM
//! wraps it in `error`); llama.cpp server sends `{"error": {"code": 400, "message",
//! "type": "exceed_context_size_error"}}`; Ollama sends `{"error": {"message", …}}` or
//! `{"error": "text"}`; FastAPI front-ends send `{"detail": …}`. [`classify_status`]
//! reads all of them. A class decides the [`Disposition`]: retry with backoff, retry up
//! to the invalid-answer limit, fail the row at once, or stop the whole stage.

use serde_json::Value;

/// The reason recorded for a failed attempt or row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 429 (and 408): the server asked us to slow down.
    RateLimited,
    /// 5xx.
    Server,
    /// No answer within `timeout_secs`.
    Timeout,
    /// Refused, reset or dropped connections; a body cut short.
    Connection,
    /// The prompt does not fit the model's context (or the request is too large).
    ContextLength,
    /// The server's content filter refused the prompt.
    ContentFilter,
    /// Any other 4xx: the request itself is wrong.
    BadRequest,
    /// 401/403: the key is missing or wrong.
    Auth,
    /// 404: wrong base URL or model.
    NotFound,
    /// 429 `insufficient_quota`: the account has no credit.
    Quota,
    /// The answer is not JSON (or the response is not a chat completion).
    InvalidJson,
    /// The answer's JSON does not match the schema.
    SchemaMismatch,
    /// `finish_reason=length`: the answer was cut at `max_tokens`.
    Truncated,
    /// Empty or null content.
    Empty,
    /// The model refused (`refusal`, `finish_reason=content_filter`).
    Refusal,
    /// The row could not become a request (e.g. no image bytes).
    BadInput,
    /// Never sent: the stage stopped sending (budget, circuit breaker, fatal error).
    NotSent,
}

/// What a class means for the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Transient: back off and send again, up to `limits.max_attempts`.
    Retry,
    /// An answer that failed validation: send again, up to `limits.max_invalid`.
    Invalid,
    /// The row fails at once; sending it again cannot succeed.
    Permanent,
    /// Nothing else will succeed either: stop sending.
    Fatal,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 17] = [
        ErrorClass::RateLimited,
        ErrorClass::Server,
        ErrorClass::Timeout,
        ErrorClass::Connection,
        ErrorClass::ContextLength,
        ErrorClass::ContentFilter,
        ErrorClass::BadRequest,
        ErrorClass::Auth,
        ErrorClass::NotFound,
        ErrorClass::Quota,
        ErrorClass::InvalidJson,
        ErrorClass::SchemaMismatch,
        ErrorClass::Truncated,
        ErrorClass::Empty,
        ErrorClass::Refusal,
        ErrorClass::BadInput,
        ErrorClass::NotSent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Server => "server_error",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connection => "connection",
            ErrorClass::ContextLength => "context_length",
            ErrorClass::ContentFilter => "content_filter",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::Auth => "auth",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Quota => "quota",
            ErrorClass::InvalidJson => "invalid_json",
            ErrorClass::SchemaMismatch => "schema_mismatch",
            ErrorClass::Truncated => "truncated",
            ErrorClass::Empty => "empty",
            ErrorClass::Refusal => "refusal",
            ErrorClass::BadInput => "bad_input",
            ErrorClass::NotSent => "not_sent",
        }
    }

    /// Position in [`Self::ALL`] (for per-class counters).
    pub fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|c| *c == self)
            .expect("ALL lists every class")
    }

    pub fn disposition(self) -> Disposition {
        match self {
            ErrorClass::RateLimited
            | ErrorClass::Server
            | ErrorClass::Timeout
            | ErrorClass::Connection => Disposition::Retry,
            ErrorClass::InvalidJson
            | ErrorClass::SchemaMismatch
            | ErrorClass::Truncated
            | ErrorClass::Empty
            | ErrorClass::Refusal => Disposition::Invalid,
            ErrorClass::ContextLength
            | ErrorClass::ContentFilter
            | ErrorClass::BadRequest
            | ErrorClass::BadInput
            | ErrorClass::NotSent => Disposition::Permanent,
            ErrorClass::Auth | ErrorClass::NotFound | ErrorClass::Quota => Disposition::Fatal,
        }
    }

    /// Does this outcome say the server is unwell (for the circuit breaker)?
    pub fn is_unhealthy(self) -> bool {
        self.disposition() == Disposition::Retry
    }
}

/// Phrases servers use for prompts that do not fit the context.
const CONTEXT_PHRASES: &[&str] = &[
    "context_length_exceeded",
    "context length",
    "context_length",
    "maximum context",
    "context size",
    "context window",
    "exceed_context_size",
    "prompt is too long",
    "too many tokens",
    "input is too long",
];

/// The class and a one-line message of an HTTP error response.
pub fn classify_status(status: u16, body: &[u8]) -> (ErrorClass, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let fields = parsed.as_ref().map(ErrorFields::of).unwrap_or_default();
    let message = fields.message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            "(empty body)".to_string()
        } else {
            truncate(text, 300)
        }
    });
    let tags = format!("{} {}", fields.code, fields.kind).to_ascii_lowercase();
    let lower = message.to_ascii_lowercase();
    let mentions = |phrases: &[&str]| {
        phrases
            .iter()
            .any(|p| tags.contains(p) || lower.contains(p))
    };
    let class = match status {
        429 if mentions(&["insufficient_quota", "exceeded your current quota"]) => {
            ErrorClass::Quota
        }
        408 => ErrorClass::Timeout,
        429 => ErrorClass::RateLimited,
        400 | 413 | 500 if mentions(CONTEXT_PHRASES) => ErrorClass::ContextLength,
        413 => ErrorClass::ContextLength,
        400 if mentions(&["content_filter", "content management policy"]) => {
            ErrorClass::ContentFilter
        }
        401 | 403 => ErrorClass::Auth,
        404 => ErrorClass::NotFound,
        409 | 500..=599 => ErrorClass::Server,
        _ => ErrorClass::BadRequest,
    };
    (class, format!("HTTP {status}: {message}"))
}

/// The parts of an error body the servers above agree on, wherever each puts them.
#[derive(Default)]
struct ErrorFields {
    message: Option<String>,
    code: String,
    kind: String,
}

impl ErrorFields {
    fn of(v: &Value) -> ErrorFields {
        let inner = match v.get("error") {
            Some(e @ Value::Object(_)) => e,
            _ => v,
        };
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let message = [
            inner.get("message"),
            v.get("error").filter(|e| e.is_string()),
            v.get("detail"),
        ]
        .into_iter()
        .map(text)
        .find(|m| !m.is_empty());
        ErrorFields {
            message: message.map(|m| truncate(&m, 300)),
            code: text(inner.get("code")),
            kind: text(inner.get("type")),
        }
    }
}

/// The class of a request that got no HTTP response.
pub fn classify_transport(err: &reqwest::Error) -> ErrorClass {
    if err.is_timeout() {
        ErrorClass::Timeout
    } else {
        ErrorClass::Connection
    }
}

/// A transport error with its causes, on one line.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// `text` cut to at most `max` bytes (on a character boundary), marked when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status: u16, body: &str) -> ErrorClass {
        classify_status(status, body.as_bytes()).0
    }

    #[test]
    fn context_length_in_every_dialect_is_permanent() {
        // OpenAI
        let openai = r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        // vLLM (old) and SGLang
        let vllm = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens","type":"BadRequestError","param":null,"code":400}"#;
        let sglang = r#"{"object":"error","message":"The input (5000 tokens) is longer than the model's context length (4096 tokens).","type":"BadRequestError","param":null,"code":400}"#;
        // llama.cpp server
        let llamacpp = r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}"#;
        for body in [openai, vllm, sglang, llamacpp] {
            assert_eq!(class(400, body), ErrorClass::ContextLength, "{body}");
        }
        assert_eq!(class(413, "too large"), ErrorClass::ContextLength);
        assert_eq!(
            ErrorClass::ContextLength.disposition(),
            Disposition::Permanent
        );
    }

    #[test]
    fn rate_limits_quota_and_server_errors() {
        let azure = r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded call rate limit. Please retry after 6 seconds."}}"#;
        assert_eq!(class(429, azure), ErrorClass::RateLimited);
        let quota = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert_eq!(class(429, quota), ErrorClass::Quota);
        assert_eq!(ErrorClass::Quota.disposition(), Disposition::Fatal);
        let loading =
            r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#;
        assert_eq!(class(503, loading), ErrorClass::Server);
        assert_eq!(class(502, "<html>Bad Gateway</html>"), ErrorClass::Server);
        assert_eq!(class(408, ""), ErrorClass::Timeout);
        assert_eq!(ErrorClass::Server.disposition(), Disposition::Retry);
    }

    #[test]
    fn auth_not_found_filters_and_bad_requests() {
        let ollama = r#"{"error":{"message":"model \"llava\" not found, try pulling it first","type":"api_error","param":null,"code":null}}"#;
        assert_eq!(class(404, ollama), ErrorClass::NotFound);
        let vllm_new = r#"{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}}"#;
        assert_eq!(class(404, vllm_new), ErrorClass::NotFound);
        assert_eq!(class(401, r#"{"error":"unauthorized"}"#), ErrorClass::Auth);
        let azure_filter = r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400}}"#;
        assert_eq!(class(400, azure_filter), ErrorClass::ContentFilter);
        let fastapi = r#"{"detail":[{"loc":["body","messages"],"msg":"field required"}]}"#;
        let (c, message) = classify_status(422, fastapi.as_bytes());
        assert_eq!(c, ErrorClass::BadRequest);
        assert!(message.contains("field required"), "{message}");
    }

    #[test]
    fn messages_come_from_wherever_the_server_put_them() {
        let (_, m) = classify_status(400, br#"{"error":"plain text error"}"#);
        assert_eq!(m, "HTTP 400: plain text error");
        let (_, m) = classify_status(500, b"");
        assert_eq!(m, "HTTP 500: (empty body)");
        let long = "x".repeat(1000);
        let (_, m) = classify_status(500, long.as_bytes());
        assert!(m.len() < 400);
    }
}
