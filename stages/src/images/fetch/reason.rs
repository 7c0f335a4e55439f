//! Why a URL gave no image: a closed set of reasons with stable names (the `reason`
//! column of the failure table and the suffix of the `failed_*` counters), each failure
//! with a detail that says what happened, and whether a later run should try again.

use std::fmt;
use std::time::Duration;

/// The reason a URL gave no image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Not a URL, or not an `http`/`https` one (also a bad `Location`).
    BadUrl,
    /// No connection could be made (DNS, refused, TLS).
    ConnectError,
    /// The connection broke while the body was read.
    BodyError,
    /// The connect, read or whole-image deadline passed.
    Timeout,
    /// An answer other than 2xx (the status is in the detail and the `http_*` counters).
    HttpStatus,
    /// A redirect back to a URL already visited.
    RedirectLoop,
    /// More redirects than the limit.
    TooManyRedirects,
    /// A body longer than the byte cap.
    TooLarge,
    /// Bytes of no image format, whatever the `Content-Type` said.
    NotAnImage,
    /// An `X-Robots-Tag` directive that opts the image out.
    OptedOut,
}

impl Reason {
    /// The name written in tables and counters.
    pub fn name(self) -> &'static str {
        match self {
            Reason::BadUrl => "bad_url",
            Reason::ConnectError => "connect_error",
            Reason::BodyError => "body_error",
            Reason::Timeout => "timeout",
            Reason::HttpStatus => "http_status",
            Reason::RedirectLoop => "redirect_loop",
            Reason::TooManyRedirects => "too_many_redirects",
            Reason::TooLarge => "too_large",
            Reason::NotAnImage => "not_an_image",
            Reason::OptedOut => "opted_out",
        }
    }

    /// The reason of a name written by [`Self::name`].
    pub fn from_name(name: &str) -> Option<Reason> {
        use Reason::*;
        [
            BadUrl,
            ConnectError,
            BodyError,
            Timeout,
            HttpStatus,
            RedirectLoop,
            TooManyRedirects,
            TooLarge,
            NotAnImage,
            OptedOut,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A URL that gave no image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
    /// The HTTP status, for [`Reason::HttpStatus`].
    pub status: Option<u16>,
    /// The wait the server asked for (`Retry-After`), if any.
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            detail: detail.into(),
            status: None,
            retry_after: None,
        }
    }

    /// An answer of `status`.
    pub fn http(status: u16, retry_after: Option<Duration>) -> Self {
        let text = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        Failure {
            reason: Reason::HttpStatus,
            detail: format!("HTTP {status} {text}").trim_end().to_string(),
            status: Some(status),
            retry_after,
        }
    }

    /// Worth another attempt within this run: 408, 429 and 5xx answers.
    pub fn retryable(&self) -> bool {
        matches!(self.status, Some(408 | 429 | 500..=599))
    }

    /// Final: a later run would get the same (so the memo keeps it). Timeouts,
    /// broken connections and the answers worth retrying may pass; they are tried
    /// again by the next run.
    pub fn definitive(&self) -> bool {
        !matches!(
            self.reason,
            Reason::ConnectError | Reason::BodyError | Reason::Timeout
        ) && !self.retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_transient_failures_are_not_final() {
        for r in [Reason::BadUrl, Reason::OptedOut, Reason::HttpStatus] {
            assert_eq!(Reason::from_name(r.name()), Some(r));
        }
        assert_eq!(Failure::http(404, None).detail, "HTTP 404 Not Found");
        assert!(Failure::http(404, None).definitive());
        assert!(!Failure::http(404, None).retryable());
        assert!(Failure::http(503, None).retryable());
        assert!(!Failure::http(429, None).definitive());
        assert!(!Failure::new(Reason::Timeout, "slow").definitive());
        assert!(Failure::new(Reason::TooLarge, "big").definitive());
    }
}
