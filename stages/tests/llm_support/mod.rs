//! Shared helpers of the LLM stage tests: a scratch project with its own store, input
//! tables written as JSONL, recipes run through the engine's executor with this
//! crate's stages, and the tables and events they leave.
#![allow(dead_code)]

use datasets::table::TableReader;
use llm::tables::{FailureRow, LedgerRow};
use pipeline::Store;
use pipeline::console::{Console, ConsoleMode};
use pipeline::events::{Event, EventRecord, EventSink, read_events};
use pipeline::executor::{Capacity, Outcome, RunOptions, RunSummary};
use pipeline::recipe::{Recipe, validate};
use pipeline::{Digest, Registry};
use schemas::Row;
use schemas::rationale::Rationale;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct Project {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

pub struct Run {
    pub summary: RunSummary,
    pub events: Vec<EventRecord>,
    pub store: Store,
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    stages::register(&mut r);
    r
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        Project { dir, store }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    /// Run `recipe` (forcing the nodes named in `force`).
    pub fn run(&self, recipe: &str, force: &[&str]) -> Run {
        self.run_cancellable(recipe, force, CancellationToken::new())
    }

    pub fn run_cancellable(&self, recipe: &str, force: &[&str], cancel: CancellationToken) -> Run {
        self.run_with(recipe, force, cancel, None)
    }

    /// Run `recipe` under the run-wide cap `budget_usd` (`--budget-usd`).
    pub fn run_capped(&self, recipe: &str, budget_usd: f64) -> Run {
        self.run_with(recipe, &[], CancellationToken::new(), Some(budget_usd))
    }

    fn run_with(
        &self,
        recipe: &str,
        force: &[&str],
        cancel: CancellationToken,
        budget_usd: Option<f64>,
    ) -> Run {
        let recipe = Recipe::parse(&self.path("r.toml"), recipe.to_string()).unwrap();
        let graph = validate(recipe, &registry()).unwrap_or_else(|e| panic!("recipe: {e}"));
        let force: BTreeSet<usize> = force.iter().map(|n| graph.index(n).unwrap()).collect();
        let run_id = pipeline::executor::new_run_id();
        let events_path = self.store.run_dir(&run_id).join("events.jsonl");
        let events = EventSink::to_file(&events_path, vec![]).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let options = RunOptions {
            capacity: Capacity {
                threads: 2,
                gpus: 0,
                llm_slots: 4096,
            },
            targets: vec![],
            force,
            budget_usd,
        };
        let summary = rt
            .block_on(pipeline::executor::run(
                Arc::new(graph),
                self.store.clone(),
                run_id,
                options,
                events,
                Console::new(ConsoleMode::Quiet),
                cancel,
            ))
            .unwrap();
        Run {
            summary,
            events: read_events(&events_path).unwrap(),
            store: self.store.clone(),
        }
    }
}

impl Run {
    pub fn outcome(&self, node: &str) -> &Outcome {
        &self
            .summary
            .outcomes
            .iter()
            .find(|(n, _)| n == node)
            .unwrap_or_else(|| panic!("no node {node}"))
            .1
    }

    /// The artifact folder of a node that ran or was fresh.
    pub fn dir(&self, node: &str) -> PathBuf {
        match self.outcome(node) {
            Outcome::Ran { digest, .. } | Outcome::Cached { digest } => {
                self.store.object_dir(digest)
            }
            other => panic!("{node}: {other:?}; log:\n{}", self.log()),
        }
    }

    pub fn digest(&self, node: &str) -> Digest {
        match self.outcome(node) {
            Outcome::Ran { digest, .. } | Outcome::Cached { digest } => *digest,
            other => panic!("{node}: {other:?}"),
        }
    }

    /// The error of a failed node.
    pub fn error(&self, node: &str) -> String {
        match self.outcome(node) {
            Outcome::Failed { error } => error.clone(),
            other => panic!("{node} did not fail: {other:?}"),
        }
    }

    /// Every message a stage logged, one per line.
    pub fn log(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| match &e.event {
                Event::Message { node, text, .. } => Some(format!("{node}: {text}")),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn output(&self, node: &str) -> Vec<Rationale> {
        rows(&self.dir(node))
    }

    pub fn failures(&self, node: &str) -> Vec<FailureRow> {
        rows(&self.dir(node).join("failures"))
    }

    pub fn ledger(&self, node: &str) -> Vec<LedgerRow> {
        rows(&self.dir(node).join("ledger"))
    }

    /// A counter of a node, as its last `node_counters` or `node_finished` event has it.
    pub fn counter(&self, node: &str, name: &str) -> u64 {
        self.events
            .iter()
            .rev()
            .find_map(|e| match &e.event {
                Event::NodeCounters { node: n, counters }
                | Event::NodeFinished {
                    node: n, counters, ..
                } if n == node => Some(counters.get(name).copied().unwrap_or(0)),
                _ => None,
            })
            .unwrap_or(0)
    }
}

pub fn rows<R: Row>(dir: &Path) -> Vec<R> {
    let reader = TableReader::open(dir).unwrap();
    reader
        .rows::<R>()
        .unwrap()
        .flat_map(Result::unwrap)
        .collect()
}

/// `n` prompts as `rl_prompt` JSONL: ids `p-000`…, prompts that mention `marker(i)`.
pub fn prompts(n: usize, marker: impl Fn(usize) -> &'static str) -> String {
    (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("p-{i:03}"),
                "prompt": format!("a photo of {} red cubes {}", i + 1, marker(i)),
                "family": "test",
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// The ids `p-000`… of `n` prompts.
pub fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("p-{i:03}")).collect()
}

/// A recipe: prompts from `prompts.jsonl`, then `rationale.plan` as node `plan` with
/// `config` (TOML lines of `[nodes.plan.config]`), and `extra` nodes after it.
pub fn plan_recipe(config: &str, extra: &str) -> String {
    format!(
        r#"
[recipe]
name = "llm"

[nodes.prompts]
kind = "source.table"
config = {{ path = "prompts.jsonl", schema = "rl_prompt" }}

[nodes.plan]
kind = "rationale.plan"
inputs = {{ prompts = "prompts" }}

[nodes.plan.config]
{config}
{extra}
"#
    )
}

/// Config lines for the mock at `url`, with fast retries and no breaker trips.
pub fn endpoint(url: &str) -> String {
    format!(
        r#"endpoint = {{ base_url = "{url}", model = "mock-model", timeout_secs = 0.5 }}
limits = {{ concurrency = 4, max_attempts = 4, max_invalid = 3, backoff_initial_secs = 0.01, backoff_max_secs = 0.05, breaker = {{ window = 100000 }} }}
progress_secs = 0.2"#
    )
}

/// Check that every id is in exactly one of the output and failure tables.
pub fn assert_partition(ids: &[String], output: &[Rationale], failures: &[FailureRow]) {
    let mut seen: Vec<&str> = output
        .iter()
        .map(|r| r.id.as_str())
        .chain(failures.iter().map(|f| f.id.as_str()))
        .collect();
    seen.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(seen, want, "every row exactly once, as output or failure");
    for f in failures {
        assert!(!f.reason.is_empty() && !f.message.is_empty(), "{f:?}");
    }
}
