//! Fault injection for crash tests.
//!
//! `REASONGEN_FAULT=point` (or `point:node`) makes the process abort at that point, with
//! no destructor or flush running, as a `kill -9` would. The points sit where a crash
//! is most likely to leave damage: just before an artifact is renamed into place, just
//! before its key is recorded, and inside a node's run.

use std::sync::OnceLock;

fn configured() -> Option<&'static str> {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT
        .get_or_init(|| std::env::var("REASONGEN_FAULT").ok())
        .as_deref()
}

/// Abort here if the fault `point` (optionally for `node`) is configured.
pub fn fault_point_for(point: &str, node: &str) {
    if let Some(want) = configured() {
        let hit = match want.split_once(':') {
            Some((p, n)) => p == point && n == node,
            None => want == point,
        };
        if hit {
            eprintln!("fault injected at {point} ({node}): aborting");
            std::process::abort();
        }
    }
}
