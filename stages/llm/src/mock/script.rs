//! What the mock server is told to do: latency, faults (by request text, by how many
//! times a request has been seen, by the server's age), a request-rate limit it
//! enforces and announces, a key it requires, and how its Batch API behaves.

use std::sync::Arc;
use std::time::Duration;

/// A function from a chat request's JSON body to the answer's content (`Err`: the
/// message of a 400).
pub type AnswerFn = dyn Fn(&serde_json::Value) -> Result<String, String> + Send + Sync;

/// Answers chat requests in place of the mock's own answers.
#[derive(Clone)]
pub struct Answerer(pub Arc<AnswerFn>);

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Answerer")
    }
}

/// A mock server's script.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// Delay before every chat answer.
    pub latency: Duration,
    /// Up to this much more delay, drawn per request body.
    pub jitter: Duration,
    /// Text answers (not JSON ones) this many tokens long, drawn from the request
    /// within `(min, max)`; `None`: the description as it comes.
    pub answer_tokens: Option<(u32, u32)>,
    /// Answers from this function instead (a model of the world, such as the shapes
    /// VLM); faults still apply first.
    pub answerer: Option<Answerer>,
    /// Faults: the first rule that applies to a request decides its fate.
    pub rules: Vec<Rule>,
    /// Enforce this many requests per minute, in one-second windows of `rpm / 60`
    /// (429 with `Retry-After` past it), and announce it in `x-ratelimit-*` headers.
    pub rpm: Option<u64>,
    /// Require this key (`Authorization: Bearer` or `api-key`); a wrong key gets a 401
    /// that quotes it, as OpenAI's does.
    pub api_key: Option<String>,
    pub batch: BatchScript,
}

/// A fault and the requests it applies to.
#[derive(Clone, Debug)]
pub struct Rule {
    pub fault: Fault,
    /// Only requests whose body contains every one of these texts.
    pub when: Vec<String>,
    /// Only a request's first this many arrivals (then it is answered); `None`: always.
    pub times: Option<u32>,
    /// Only while the server is younger than this.
    pub until: Option<Duration>,
}

impl Rule {
    /// `fault` for every request, every time.
    pub fn always(fault: Fault) -> Rule {
        Rule {
            fault,
            when: Vec::new(),
            times: None,
            until: None,
        }
    }

    /// Also require `text` in the request body.
    pub fn when(mut self, text: &str) -> Rule {
        self.when.push(text.to_string());
        self
    }

    pub fn times(mut self, n: u32) -> Rule {
        self.times = Some(n);
        self
    }

    pub fn until(mut self, age: Duration) -> Rule {
        self.until = Some(age);
        self
    }
}

/// What goes wrong.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 429 `rate_limit_exceeded`, with or without `Retry-After`.
    RateLimited(Option<RetryAfter>),
    /// Any status with any body (5xx, a 400 of some server's dialect, …).
    Status(u16, String),
    /// Never answer (the client times out).
    Hang,
    /// Close the connection without an answer.
    Drop,
    /// 200 with content that is not JSON.
    InvalidJson,
    /// 200 with JSON that matches no schema of ours.
    SchemaViolation,
    /// 200 with `finish_reason=length`.
    Truncated,
    /// 200 with null content.
    Empty,
}

impl Fault {
    /// OpenAI's 400 for a prompt longer than the context.
    pub fn context_length() -> Fault {
        Fault::Status(
            400,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9001 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#.into(),
        )
    }

    /// A 5xx with vLLM's body.
    pub fn server_error(status: u16) -> Fault {
        Fault::Status(
            status,
            format!(
                r#"{{"object":"error","message":"mock server error","type":"InternalServerError","param":null,"code":{status}}}"#
            ),
        )
    }
}

/// The two forms of `Retry-After`.
#[derive(Clone, Copy, Debug)]
pub enum RetryAfter {
    Seconds(u64),
    /// An HTTP date this far in the future.
    Date(Duration),
}

/// The Batch API's behaviour.
#[derive(Clone, Debug, Default)]
pub struct BatchScript {
    /// Time from a batch's creation to its end.
    pub latency: Duration,
    /// Requests whose body contains this text expire the first time they are in a
    /// batch (the batch ends `expired`).
    pub expire_when: Option<String>,
    /// The first this many batches fail validation (status `failed`, no output).
    pub fail_first: u32,
}
