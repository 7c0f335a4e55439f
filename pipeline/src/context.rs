//! What a stage sees while it runs: its inputs, its output folder, a scratch folder,
//! the store's memo, events, progress, cancellation, its seed and thread budget.

use crate::artifact::Content;
use crate::budget::Budget;
use crate::digest::Digest;
use crate::events::{Event, EventSink};
use crate::memo::Memo;
use crate::progress::Progress;
use crate::shard::Shard;
use crate::stage::StageError;
use crate::store::{Held, HeldFile, Hold, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// An input artifact, ready to read (its files are read-only).
#[derive(Clone, Debug)]
pub struct InputArtifact {
    /// The node that produced it.
    pub node: String,
    pub digest: Digest,
    pub dir: PathBuf,
    pub content: Content,
}

impl InputArtifact {
    /// Paths of the artifact's files, in manifest order.
    pub fn files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.content.files.iter().map(|f| self.dir.join(&f.path))
    }
}

/// The context of one node run.
pub struct StageContext {
    pub node: String,
    /// Name of the recipe the node belongs to.
    pub recipe: String,
    /// The node's run key (what its output is the function of).
    pub run_key: Digest,
    /// Where the stage writes its artifact's files. Nothing else is published.
    pub out_dir: PathBuf,
    /// Private temporary space, removed after the run.
    pub scratch_dir: PathBuf,
    /// Folder of the recipe, against which relative paths in configs resolve.
    pub recipe_dir: PathBuf,
    pub seed: u64,
    /// Threads the node may use (granted by the executor).
    pub threads: usize,
    /// GPU ordinals this node opens, its own while it runs (granted by the executor
    /// out of `--gpus`, or by the batch system); empty when it holds none.
    pub devices: Vec<u32>,
    pub progress: Progress,
    pub cancel: CancellationToken,
    /// The run's money cap (`reasongen run --budget-usd`), shared by every node that
    /// spends; each spender also keeps its own.
    pub run_budget: Option<Arc<Budget>>,
    /// The one shard of the node's items this process does (a shardable stage skips
    /// the others and its output is discarded); `None` for the whole node.
    pub shard: Option<Shard>,
    pub(crate) inputs: BTreeMap<String, Vec<InputArtifact>>,
    pub(crate) events: EventSink,
    pub(crate) store: Store,
    pub(crate) tally: Tally,
    pub(crate) run_dir: PathBuf,
}

/// A node's counters and the memos it opened; the executor keeps a clone to read
/// them after the stage returns.
#[derive(Clone, Default)]
pub(crate) struct Tally {
    counters: Arc<Mutex<BTreeMap<String, u64>>>,
    memos: Arc<Mutex<Vec<Memo>>>,
    held: Arc<Mutex<Vec<HeldFile>>>,
}

impl Tally {
    /// The files the stage held ([`StageContext::hold`]).
    pub(crate) fn held(&self) -> Vec<HeldFile> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Counters, with the memo statistics folded in.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for m in self.memos.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let s = m.stats();
            for (name, v) in [
                ("memo_hits", s.hits.load(Ordering::Relaxed)),
                ("memo_misses", s.misses.load(Ordering::Relaxed)),
            ] {
                if v > 0 {
                    *counters.entry(name.to_string()).or_default() += v;
                }
            }
        }
        counters
    }
}

impl StageContext {
    /// The single artifact bound to input `name`.
    pub fn input(&self, name: &str) -> Result<&InputArtifact, StageError> {
        match self.inputs.get(name).map(Vec::as_slice) {
            Some([one]) => Ok(one),
            Some(many) if many.len() > 1 => Err(StageError::msg(format!(
                "input `{name}` has {} artifacts; the stage expected one",
                many.len()
            ))),
            _ => Err(StageError::msg(format!("input `{name}` is not bound"))),
        }
    }

    /// All artifacts bound to input `name` (empty if unbound).
    pub fn inputs(&self, name: &str) -> &[InputArtifact] {
        self.inputs.get(name).map_or(&[], Vec::as_slice)
    }

    /// Every bound input, by name.
    pub fn all_inputs(&self) -> &BTreeMap<String, Vec<InputArtifact>> {
        &self.inputs
    }

    /// The item-level memo of `namespace`; its hits and misses are counted in the
    /// node's counters as `memo_hits` and `memo_misses`.
    pub fn memo(&self, namespace: &str) -> Result<Memo, StageError> {
        let memo = self.store.memo(namespace)?;
        self.tally
            .memos
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(memo.clone());
        Ok(memo)
    }

    /// The same memo as [`Self::memo`], without counting its lookups in the node's
    /// counters: for reading back records the stage has already counted (a second pass
    /// over its rows) or bookkeeping records that are not work done.
    pub fn memo_uncounted(&self, namespace: &str) -> Result<Memo, StageError> {
        Ok(self.store.memo(namespace)?)
    }

    /// The training checkpoints of this node run (its run key), which a later run of
    /// the same node resumes from; the engine removes them once the artifact is
    /// published.
    pub fn checkpoints(&self) -> crate::store::Checkpoints {
        self.store.checkpoints(&self.run_key)
    }

    /// Put the file `source` from outside the store into the artifact at `rel` (a
    /// relative path in `out_dir`) without a second copy of its bytes: a hard link, or
    /// a reference (the store's `held` module says what each means). For large files a user brings (model weights); it is hashed through the
    /// store's stat cache, so a file the run key just hashed is not read again.
    pub fn hold(&self, source: &Path, rel: &str, how: Hold) -> Result<Held, StageError> {
        let files = self.store.file_hasher()?;
        let held = crate::store::hold(&files, source, &self.out_dir.join(rel), rel, how)?;
        self.tally
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(held.file.clone());
        Ok(held)
    }

    /// Add `n` to the node counter `name` (shown by `status`, kept in the lineage).
    pub fn count(&self, name: &str, n: u64) {
        *self
            .tally
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default() += n;
    }

    /// Log a line to the run's event stream (and the console).
    pub fn log(&self, text: impl Into<String>) {
        self.events.emit(Event::Message {
            node: self.node.clone(),
            level: "info".into(),
            text: text.into(),
        });
    }

    /// Remove secrets (values of secret-looking environment variables, and those added
    /// with [`Self::add_secret`]) from a text before it goes anywhere a person or a file
    /// will see it.
    pub fn redact(&self, text: &str) -> String {
        self.events.redact(text)
    }

    /// Treat `value` as a secret for the rest of the run (events, console, logs, and
    /// [`Self::redact`]): for a key read from a variable whose name does not look
    /// secret. Values shorter than 8 characters are ignored.
    pub fn add_secret(&self, value: &str) {
        self.events.add_secret(value);
    }

    /// Write the node's counters so far to the event stream (`node_counters`), for
    /// stages whose totals matter even if they fail (requests, tokens, spend).
    pub fn emit_counters(&self) {
        self.events.emit(Event::NodeCounters {
            node: self.node.clone(),
            counters: self.tally.snapshot(),
        });
    }

    /// A path from the config, resolved against the recipe folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        resolve_against(&self.recipe_dir, path)
    }

    /// Folder for this node's logs in the run folder.
    pub fn log_dir(&self) -> PathBuf {
        self.run_dir.join("logs")
    }

    /// `Err(cancelled)` once the run is being cancelled.
    pub fn check_cancelled(&self) -> Result<(), StageError> {
        if self.cancel.is_cancelled() {
            Err(StageError::cancelled())
        } else {
            Ok(())
        }
    }
}

/// `path` if absolute, else `dir/path`.
pub fn resolve_against(dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Where long work reports as it goes: the expected total, then each step done. An
/// error from [`Tracker::advance`] (a cancelled run) stops the work. `()` tracks
/// nothing (tests, benchmarks); a [`StageContext`] drives the node's progress bar.
pub trait Tracker {
    fn total(&self, total: u64, unit: &str);
    fn advance(&self, n: u64) -> Result<(), StageError>;
}

impl Tracker for () {
    fn total(&self, _: u64, _: &str) {}
    fn advance(&self, _: u64) -> Result<(), StageError> {
        Ok(())
    }
}

impl Tracker for StageContext {
    fn total(&self, total: u64, unit: &str) {
        self.progress.set_total(total, unit);
    }
    fn advance(&self, n: u64) -> Result<(), StageError> {
        self.progress.inc(n);
        self.check_cancelled()
    }
}
