//! The config of `images.fetch`: which columns hold what, and how politely and how
//! patiently URLs are fetched, with defaults that suit LAION-style URL lists.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Config of `images.fetch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// The column of the input table that holds the URLs.
    #[serde(default = "default_url_column")]
    pub url_column: String,
    /// The column that holds the captions (none by default).
    #[serde(default)]
    pub caption_column: Option<String>,
    /// The column that holds the row ids; by default a row's id is its position in
    /// the input table (`00000041`).
    #[serde(default)]
    pub id_column: Option<String>,
    /// Requests in flight at once, over all hosts.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Requests in flight at once to one host.
    #[serde(default = "default_per_host_concurrency")]
    pub per_host_concurrency: u32,
    /// Requests started per second to one host; 0: no limit.
    #[serde(default = "default_per_host_rate")]
    pub per_host_requests_per_second: f64,
    /// Attempts after the first for an answer of 408, 429 or 5xx.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry, doubled for each next one (a `Retry-After` header
    /// sets the wait instead), in seconds.
    #[serde(default = "default_backoff")]
    pub backoff_s: f64,
    /// Longest wait before a retry; a `Retry-After` asking for more ends the URL as a
    /// failure rather than being ignored.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_s: f64,
    /// Seconds to establish a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_s: f64,
    /// Seconds without a byte from the server.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_s: f64,
    /// Seconds for one attempt at an image, redirects and body included (a server that
    /// sends a byte now and then is cut off here).
    #[serde(default = "default_deadline")]
    pub deadline_s: f64,
    /// Largest image accepted, in bytes; the body is abandoned once it is exceeded.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Redirects followed per URL.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Honour `X-Robots-Tag` opt-outs (for all agents, or for `user_agent_token`).
    #[serde(default = "yes")]
    pub respect_opt_out: bool,
    /// The `X-Robots-Tag` directives that opt an image out (img2dataset's defaults).
    #[serde(default = "default_opt_out_directives")]
    pub opt_out_directives: Vec<String>,
    /// The agent token that `X-Robots-Tag: <token>: <directives>` names us by.
    #[serde(default = "default_token")]
    pub user_agent_token: String,
    /// The `User-Agent` header sent; by default it names reasongen and its version.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Threads of the HTTP runtime (at most what the run grants).
    #[serde(default)]
    pub threads: Option<u32>,
}

fn default_url_column() -> String {
    "url".into()
}
fn default_concurrency() -> u32 {
    64
}
fn default_per_host_concurrency() -> u32 {
    8
}
fn default_per_host_rate() -> f64 {
    20.0
}
fn default_retries() -> u32 {
    3
}
fn default_backoff() -> f64 {
    1.0
}
fn default_max_backoff() -> f64 {
    60.0
}
fn default_connect_timeout() -> f64 {
    10.0
}
fn default_read_timeout() -> f64 {
    10.0
}
fn default_deadline() -> f64 {
    30.0
}
fn default_max_bytes() -> u64 {
    20 << 20
}
fn default_max_redirects() -> u32 {
    5
}
fn yes() -> bool {
    true
}
fn default_opt_out_directives() -> Vec<String> {
    ["noai", "noimageai", "noindex", "noimageindex"]
        .map(String::from)
        .to_vec()
}
fn default_token() -> String {
    "reasongen".into()
}

impl Default for FetchConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

/// A number of seconds from the config as a duration (checked positive by `check`).
fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl FetchConfig {
    /// Why the config cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("concurrency", self.concurrency),
            ("per_host_concurrency", self.per_host_concurrency),
        ] {
            if v == 0 {
                return Err(format!("`{name}` must be at least 1"));
            }
        }
        for (name, v) in [
            ("connect_timeout_s", self.connect_timeout_s),
            ("read_timeout_s", self.read_timeout_s),
            ("deadline_s", self.deadline_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("`{name}` must be a positive number of seconds"));
            }
        }
        for (name, v) in [
            (
                "per_host_requests_per_second",
                self.per_host_requests_per_second,
            ),
            ("backoff_s", self.backoff_s),
            ("max_backoff_s", self.max_backoff_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("`{name}` must be a number of at least 0"));
            }
        }
        if self.max_bytes == 0 {
            return Err("`max_bytes` must be at least 1".into());
        }
        if self.url_column.is_empty() {
            return Err("`url_column` must name a column".into());
        }
        Ok(())
    }

    /// The `User-Agent` header.
    pub fn user_agent(&self) -> String {
        self.user_agent.clone().unwrap_or_else(|| {
            format!(
                "reasongen/{} (dataset image fetcher; honours X-Robots-Tag: noai)",
                env!("CARGO_PKG_VERSION")
            )
        })
    }

    pub fn connect_timeout(&self) -> Duration {
        secs(self.connect_timeout_s)
    }
    pub fn read_timeout(&self) -> Duration {
        secs(self.read_timeout_s)
    }
    pub fn deadline(&self) -> Duration {
        secs(self.deadline_s)
    }
    /// The wait before retry number `attempt` (0-based) when the server named none.
    pub fn backoff(&self, attempt: u32) -> Duration {
        secs((self.backoff_s * 2f64.powi(attempt.min(30) as i32)).min(self.max_backoff_s))
    }
    pub fn max_backoff(&self) -> Duration {
        secs(self.max_backoff_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_values_are_named() {
        let c = FetchConfig::default();
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.url_column, "url");
        assert!(c.user_agent().starts_with("reasongen/"));
        let zero = FetchConfig {
            per_host_concurrency: 0,
            ..c.clone()
        };
        assert!(zero.check().unwrap_err().contains("per_host_concurrency"));
        let never = FetchConfig {
            deadline_s: 0.0,
            ..c.clone()
        };
        assert!(never.check().unwrap_err().contains("deadline_s"));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let c = FetchConfig {
            backoff_s: 0.5,
            max_backoff_s: 3.0,
            ..FetchConfig::default()
        };
        let waits: Vec<f64> = (0..4).map(|a| c.backoff(a).as_secs_f64()).collect();
        assert_eq!(waits, [0.5, 1.0, 2.0, 3.0]);
    }
}
