//! Progress of a running node: counters a stage bumps, read by the console and turned
//! into `node_progress` events by the executor.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A node's progress. Cheap to clone; updates are lock-free.
#[derive(Clone, Default)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    done: AtomicU64,
    /// 0 when unknown.
    total: AtomicU64,
    unit: Mutex<String>,
}

impl Progress {
    /// Set the expected total and its unit (`rows`, `requests`, `steps`, ...).
    pub fn set_total(&self, total: u64, unit: &str) {
        self.inner.total.store(total, Ordering::Relaxed);
        *self.inner.unit.lock().unwrap_or_else(|p| p.into_inner()) = unit.to_string();
    }

    pub fn inc(&self, n: u64) {
        self.inner.done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_done(&self, done: u64) {
        self.inner.done.store(done, Ordering::Relaxed);
    }

    /// (done, total if known, unit)
    pub fn snapshot(&self) -> (u64, Option<u64>, String) {
        let total = self.inner.total.load(Ordering::Relaxed);
        (
            self.inner.done.load(Ordering::Relaxed),
            (total > 0).then_some(total),
            self.inner
                .unit
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}
