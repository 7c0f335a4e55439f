//! What executors take and give: a [`Job`] (a row's key and request, or why it has
//! none), and failed requests as the executors hand them back: a class, a message,
//! the raw text (error body or invalid answer), the attempts made and what they cost.
//! Failures are kept by request key; their memory is bounded by the number of failed
//! requests (raw text is cut at 4 KiB), never by the number of rows.

use super::answer::Spend;
use super::errors::ErrorClass;
use super::request::Request;
use pipeline::Digest;
use std::collections::HashMap;

/// One row's work.
pub struct Job {
    pub key: Digest,
    /// `Err`: why the row cannot be sent.
    pub request: Result<Request, String>,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
    pub raw: Option<String>,
    pub attempts: u32,
    pub spend: Spend,
}

impl Failure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
            raw: None,
            attempts: 0,
            spend: Spend::default(),
        }
    }
}

/// What an executor leaves for the assembly, besides the answers in the memo.
#[derive(Debug, Default)]
pub struct Collected {
    pub failures: HashMap<Digest, Failure>,
    /// Why sending stopped before every request was sent (budget, breaker, fatal error).
    pub stop: Option<String>,
}
