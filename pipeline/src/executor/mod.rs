//! Executors: what decides which nodes run ([`scheduler`]) and what runs one node
//! ([`NodeRunner`]): in this process ([`local`]), or as a Slurm job ([`slurm`]) that
//! runs `reasongen exec-node` ([`remote`]) against the same store.
//!
//! The scheduler walks the DAG in the controller: it keys nodes, skips fresh ones,
//! holds the declared resources (and hands each GPU node its own device ids), cuts off
//! early when a re-run reproduces the same content, and writes the run's events. Every
//! runner ends in the same code path for one node ([`node::execute`]): take the node
//! lock, look again, run the stage into a private folder, publish, record the key,
//! move the ref. Nothing half-written is ever published.

pub mod devices;
pub mod local;
pub mod node;
pub mod remote;
pub mod scheduler;
pub mod slurm;

use crate::digest::Digest;
use crate::events::{RunStatus, now_ms};
use crate::registry::{BoxFuture, PreparedNode};
use crate::stage::{Resources, StageError};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

pub use local::LocalRunner;
pub use node::{NodeSpec, RunEnv};
pub use scheduler::{run, run_with};

/// What the machine gives a run.
#[derive(Clone, Copy, Debug)]
pub struct Capacity {
    pub threads: u32,
    pub gpus: u32,
    pub llm_slots: u32,
}

impl Capacity {
    fn fits(&self, used: &Resources, want: &Resources) -> bool {
        used.threads + want.threads <= self.threads
            && used.gpus + want.gpus <= self.gpus
            && used.llm_slots + want.llm_slots <= self.llm_slots
    }

    /// A request clamped to what exists, so a node asking for 8 threads on 2 cores runs.
    fn clamp(&self, want: Resources) -> Resources {
        Resources {
            threads: want.threads.clamp(1, self.threads.max(1)),
            gpus: want.gpus,
            llm_slots: want.llm_slots.min(self.llm_slots),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub capacity: Capacity,
    /// Run only these nodes and what they need (all nodes if empty).
    pub targets: Vec<usize>,
    /// Re-run these nodes even if fresh.
    pub force: BTreeSet<usize>,
    /// What the run's nodes may spend together, in USD (`--budget-usd`).
    pub budget_usd: Option<f64>,
}

/// How one node ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ran {
        digest: Digest,
        duration_ms: u64,
        unchanged: bool,
    },
    Cached {
        digest: Digest,
    },
    Failed {
        error: String,
    },
    Skipped {
        reason: String,
    },
    Cancelled,
}

pub struct RunSummary {
    pub run_id: String,
    pub status: RunStatus,
    pub duration_ms: u64,
    /// Outcome of every selected node, in topological order.
    pub outcomes: Vec<(String, Outcome)>,
}

impl RunSummary {
    pub fn failed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.outcomes.iter().filter_map(|(n, o)| match o {
            Outcome::Failed { error } => Some((n.as_str(), error.as_str())),
            _ => None,
        })
    }
}

/// One node the scheduler hands to a runner: its description, its stage, and what it
/// was granted.
pub struct NodeJob {
    pub spec: NodeSpec,
    pub prepared: Arc<dyn PreparedNode>,
    pub granted: Resources,
    /// GPU ordinals given to this node by the local allocation (empty for none).
    pub devices: Vec<u32>,
}

/// Runs one node whose run key is not in the store (or is forced), and says how it
/// ended. A runner never decides what runs; it only runs what it is given.
pub trait NodeRunner: Send + Sync + 'static {
    fn run_node(&self, env: Arc<RunEnv>, job: NodeJob) -> BoxFuture<Result<Outcome, StageError>>;
}

/// A fresh run id: UTC time to the millisecond (so ids sort in time order) and a few
/// hex digits that differ between runs started in the same millisecond.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_millis(now)
        .to_string()
        .replace(['-', ':'], "");
    let nonce = Digest::of_json(&(
        std::process::id(),
        now_ms(),
        Instant::now().elapsed().as_nanos(),
    ));
    format!("{stamp}-{}", &nonce.to_hex()[..6])
}
