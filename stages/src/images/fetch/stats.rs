//! What a run did, by reason and by host: the counters, log lines and output meta of
//! `images.fetch`. Hosts are counted up to a limit (the rest are summed as "other
//! hosts"), so that a list of millions of hosts keeps memory bounded.

use super::reason::{Failure, Reason};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// Hosts counted one by one.
const HOSTS_COUNTED: usize = 10_000;
/// Hosts named in the meta and the log, the busiest first.
const HOSTS_SHOWN: usize = 20;
/// The name the hosts past the limit are counted under.
const OTHER_HOSTS: &str = "(other hosts)";

/// Images and failures of one host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCounts {
    pub images: u64,
    pub failed: u64,
    pub bytes: u64,
}

/// Counts of a run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub images: u64,
    pub failed: u64,
    pub bytes: u64,
    /// URLs whose outcome came from the memo (not fetched).
    pub from_memo: u64,
    pub requests: u64,
    pub retries: u64,
    pub reasons: BTreeMap<Reason, u64>,
    /// Failures by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    pub hosts: HashMap<String, HostCounts>,
}

impl Stats {
    /// Count one URL's outcome (`host` empty for a URL without one).
    pub fn add(&mut self, host: &str, outcome: Result<u64, &Failure>) {
        let host = if self.hosts.len() < HOSTS_COUNTED || self.hosts.contains_key(host) {
            host
        } else {
            OTHER_HOSTS
        };
        let entry = self.hosts.entry(host.to_string()).or_default();
        match outcome {
            Ok(bytes) => {
                self.images += 1;
                self.bytes += bytes;
                entry.images += 1;
                entry.bytes += bytes;
            }
            Err(f) => {
                self.failed += 1;
                entry.failed += 1;
                *self.reasons.entry(f.reason).or_default() += 1;
                if let Some(s) = f.status {
                    *self.statuses.entry(s).or_default() += 1;
                }
            }
        }
    }

    /// The busiest hosts, most URLs first (then by name).
    pub fn top_hosts(&self) -> Vec<(&str, HostCounts)> {
        let mut hosts: Vec<_> = self.hosts.iter().map(|(h, c)| (h.as_str(), *c)).collect();
        hosts.sort_by(|a, b| {
            (b.1.images + b.1.failed)
                .cmp(&(a.1.images + a.1.failed))
                .then(a.0.cmp(b.0))
        });
        hosts.truncate(HOSTS_SHOWN);
        hosts
    }

    /// Counter names and values (`failed_<reason>`, `http_<status>`, …).
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("images".to_string(), self.images),
            ("failed".to_string(), self.failed),
            ("bytes".to_string(), self.bytes),
            ("from_memo".to_string(), self.from_memo),
            ("requests".to_string(), self.requests),
            ("retries".to_string(), self.retries),
            ("hosts".to_string(), self.hosts.len() as u64),
        ];
        out.extend(
            self.reasons
                .iter()
                .map(|(r, n)| (format!("failed_{r}"), *n)),
        );
        out.extend(self.statuses.iter().map(|(s, n)| (format!("http_{s}"), *n)));
        out
    }

    /// One log line per busy host.
    pub fn host_lines(&self) -> Vec<String> {
        self.top_hosts()
            .into_iter()
            .map(|(h, c)| {
                format!(
                    "host {h}: {} images ({} bytes), {} failed",
                    c.images, c.bytes, c.failed
                )
            })
            .collect()
    }

    /// The `failed` and `hosts` parts of the output meta.
    pub fn meta(&self) -> Value {
        json!({
            "failed": {
                "rows": self.failed,
                "reasons": self.reasons.iter().map(|(r, n)| (r.name(), *n)).collect::<BTreeMap<_, _>>(),
                "http_status": self.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
            },
            "fetch": {
                "from_memo": self.from_memo,
                "requests": self.requests,
                "retries": self.retries,
                "bytes": self.bytes,
            },
            "hosts": {
                "count": self.hosts.len(),
                "busiest": self.top_hosts().into_iter().map(|(h, c)| json!({
                    "host": h, "images": c.images, "failed": c.failed, "bytes": c.bytes,
                })).collect::<Vec<_>>(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_reason_status_and_host() {
        let mut s = Stats::default();
        s.add("a", Ok(10));
        s.add("a", Err(&Failure::http(404, None)));
        s.add("b", Ok(5));
        s.add("", Err(&Failure::new(Reason::BadUrl, "x")));
        assert_eq!((s.images, s.failed, s.bytes), (2, 2, 15));
        assert_eq!(s.reasons[&Reason::HttpStatus], 1);
        assert_eq!(s.statuses[&404], 1);
        assert_eq!(
            s.top_hosts()[0],
            (
                "a",
                HostCounts {
                    images: 1,
                    failed: 1,
                    bytes: 10
                }
            )
        );
        let counters: BTreeMap<_, _> = s.counters().into_iter().collect();
        assert_eq!(counters["failed_bad_url"], 1);
        assert_eq!(counters["http_404"], 1);
        assert_eq!(s.meta()["failed"]["reasons"]["http_status"], 1);
    }

    #[test]
    fn hosts_past_the_limit_are_summed() {
        let mut s = Stats::default();
        for i in 0..HOSTS_COUNTED + 5 {
            s.add(&format!("h{i}"), Ok(1));
        }
        assert_eq!(s.hosts.len(), HOSTS_COUNTED + 1);
        assert_eq!(s.hosts[OTHER_HOSTS].images, 5);
    }
}
