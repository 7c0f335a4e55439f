//! The event stream of a run: one JSONL file per run (`runs/<id>/events.jsonl`), read by
//! the console, `reasongen status` and any tool that wants to follow a run.
//!
//! Secrets never enter it: every line passes through a redactor that replaces the
//! values of secret-looking environment variables (names containing KEY, TOKEN, SECRET,
//! PASSWORD or CREDENTIAL), and any value a stage registers at run time (an API key
//! read from a variable the config names), with `***`.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Something that happened in a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        recipe: String,
        recipe_path: String,
        nodes: Vec<String>,
        /// The run's money cap (`--budget-usd`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget_usd: Option<f64>,
    },
    /// Freshness decided before running, with the reasons when stale.
    NodePlanned {
        node: String,
        fresh: bool,
        reasons: Vec<String>,
    },
    /// The node waits for something other than its inputs (another process, resources).
    NodeWaiting {
        node: String,
        reason: String,
    },
    NodeStarted {
        node: String,
        stage: String,
        run_key: Digest,
        /// The GPU ordinals the node was given.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        devices: Vec<u32>,
    },
    NodeProgress {
        node: String,
        done: u64,
        total: Option<u64>,
        unit: String,
    },
    NodeCached {
        node: String,
        run_key: Digest,
        digest: Digest,
    },
    NodeFinished {
        node: String,
        run_key: Digest,
        digest: Digest,
        duration_ms: u64,
        rows: Option<u64>,
        bytes: u64,
        counters: BTreeMap<String, u64>,
        /// The node re-ran but wrote exactly what its ref already held.
        unchanged: bool,
    },
    NodeFailed {
        node: String,
        error: String,
        duration_ms: u64,
    },
    NodeSkipped {
        node: String,
        reason: String,
    },
    /// A running node's counters so far (stages that spend money report them as they
    /// go, so that a node that fails still leaves its totals in the stream).
    NodeCounters {
        node: String,
        counters: BTreeMap<String, u64>,
    },
    /// A stage's own log line.
    Message {
        node: String,
        level: String,
        text: String,
    },
    RunFinished {
        status: RunStatus,
        duration_ms: u64,
        ran: usize,
        cached: usize,
        failed: usize,
        skipped: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Cancelled,
}

/// One line of `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Unix milliseconds.
    pub ts_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Listener = Arc<dyn Fn(&EventRecord) + Send + Sync>;

/// Where events go: the run's JSONL file and any listeners (the console). Cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    file: Option<Arc<Mutex<File>>>,
    listeners: Arc<Vec<Listener>>,
    redactor: Arc<Redactor>,
}

impl EventSink {
    /// A sink that appends to `path` and calls `listeners` for every event.
    pub fn to_file(path: &Path, listeners: Vec<Listener>) -> std::io::Result<EventSink> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(EventSink {
            file: Some(Arc::new(Mutex::new(file))),
            listeners: Arc::new(listeners),
            redactor: Arc::new(Redactor::from_env()),
        })
    }

    /// A sink that only calls listeners (tests, dry runs).
    pub fn detached(listeners: Vec<Listener>) -> EventSink {
        EventSink {
            file: None,
            listeners: Arc::new(listeners),
            redactor: Arc::new(Redactor::from_env()),
        }
    }

    pub fn emit(&self, event: Event) {
        self.forward(EventRecord {
            ts_ms: now_ms(),
            event,
        });
    }

    /// Write a record another process emitted (a remote node's), keeping its time.
    pub fn forward(&self, record: EventRecord) {
        let line = serde_json::to_string(&record).expect("events serialise");
        let line = self.redactor.redact(&line);
        let record: EventRecord = serde_json::from_str(&line).expect("redaction keeps JSON valid");
        if let Some(file) = &self.file {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            // One write per line: concurrent appenders never interleave within a line.
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
        for l in self.listeners.iter() {
            l(&record);
        }
    }

    /// Remove secrets from a text (for messages that go elsewhere than the sink).
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// Treat `secret` as a secret from now on, in every clone of this sink.
    pub fn add_secret(&self, secret: &str) {
        self.redactor.add(secret);
    }
}

/// Replaces secret values with `***`.
#[derive(Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is replaced whole.
    secrets: RwLock<Vec<String>>,
}

/// Values shorter than this are not treated as secrets (they would shred ordinary text:
/// local servers take placeholder keys such as `EMPTY`).
const MIN_SECRET_LEN: usize = 8;

impl Redactor {
    /// Secrets are the values (8+ characters) of environment variables whose names
    /// look secret.
    pub fn from_env() -> Self {
        let redactor = Redactor::default();
        for (name, value) in std::env::vars() {
            if is_secret_name(&name) {
                redactor.add(&value);
            }
        }
        redactor
    }

    /// Add a secret value (ignored if shorter than 8 characters).
    pub fn add(&self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        let mut secrets = self.secrets.write().unwrap_or_else(|p| p.into_inner());
        if !secrets.iter().any(|s| s == secret) {
            secrets.push(secret.to_string());
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
            // The same secret as it appears inside a JSON string.
            let escaped = serde_json::to_string(s).expect("strings serialise");
            let escaped = &escaped[1..escaped.len() - 1];
            if escaped != s && out.contains(escaped) {
                out = out.replace(escaped, "***");
            }
        }
        out
    }
}

/// Does an environment variable name look like it holds a secret?
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH"]
        .iter()
        .any(|w| upper.contains(w))
}

/// Read a run's events back (skipping a torn last line of a killed run).
pub fn read_events(path: &Path) -> std::io::Result<Vec<EventRecord>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_replaces_plain_and_json_escaped_secrets() {
        let r = Redactor::default();
        r.add("sk-abc\"123456");
        r.add("short");
        assert_eq!(r.redact("key=sk-abc\"123456! short"), "key=***! short");
        let json = serde_json::to_string("auth sk-abc\"123456").unwrap();
        assert_eq!(r.redact(&json), "\"auth ***\"");
        assert!(is_secret_name("OPENAI_API_KEY"));
        assert!(!is_secret_name("PATH"));
    }

    #[test]
    fn events_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = EventSink::to_file(&path, vec![]).unwrap();
        sink.emit(Event::NodeSkipped {
            node: "a".into(),
            reason: "upstream `b` failed".into(),
        });
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"ts_ms\":1,\"event\":\"node_sk")
            .unwrap();
        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0].event, Event::NodeSkipped { node, .. } if node == "a"));
    }
}
