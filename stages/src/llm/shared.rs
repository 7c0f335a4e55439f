//! What the requests of one node run share: the stage context (logs, counters,
//! progress, cancellation), the client, the gate, backoff, the ledger, the memo (read
//! here, written through the group-commit writer) and what a valid answer looks like.

use super::answer::{Answer, Expect};
use super::backoff::Backoff;
use super::client::Client;
use super::config::LimitsConfig;
use super::gate::Gate;
use super::ledger::Ledger;
use super::memo_writer::MemoWriter;
use pipeline::memo::Memo;
use pipeline::{Digest, StageContext, StageError};
use std::sync::Arc;

pub struct Shared {
    pub ctx: Arc<StageContext>,
    pub client: Client,
    pub gate: Gate,
    pub backoff: Backoff,
    pub ledger: Ledger,
    /// The answers (lookups count as the node's memo hits and misses).
    pub memo: Memo,
    pub writer: MemoWriter,
    pub expect: Expect,
    pub limits: LimitsConfig,
}

impl Shared {
    /// The stored answer of a request, if any (a record this build cannot read is
    /// treated as absent, and replaced when the request is answered again).
    pub fn lookup(&self, key: &Digest) -> Result<Option<Answer>, StageError> {
        Ok(self.memo.get_json(key)?)
    }

    /// Log a line to the run's events (the event sink removes secrets).
    pub fn log(&self, text: impl Into<String>) {
        self.ctx.log(text);
    }
}
