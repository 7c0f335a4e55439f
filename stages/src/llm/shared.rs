//! What the requests of one node run share: the stage context (logs, counters,
//! progress, cancellation), the client, the gate, backoff, the ledger, the budgets, the
//! memo (read here, written through the group-commit writer) and what a valid answer
//! looks like.

use super::answer::{Answer, Expect};
use super::backoff::Backoff;
use super::client::Client;
use super::config::LimitsConfig;
use super::gate::Gate;
use super::ledger::Ledger;
use super::memo_writer::MemoWriter;
use pipeline::budget::{Budget, NANO, Overrun};
use pipeline::memo::Memo;
use pipeline::{Digest, StageContext, StageError};
use std::sync::Arc;

pub struct Shared {
    pub ctx: Arc<StageContext>,
    pub client: Client,
    pub gate: Gate,
    pub backoff: Backoff,
    pub ledger: Ledger,
    /// The caps each request's worst case is reserved against (node's, then run's).
    pub budgets: Vec<Arc<Budget>>,
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

    /// A bill came in above its worst case: the bound on what a request can cost does
    /// not hold, so stop sending.
    pub fn overrun(&self, over: Overrun) {
        self.gate.stop(format!(
            "the server billed ${:.6} for a request whose worst case was ${:.6}, so the budget's bound does not hold; \
             name the model's tokenizer (cost.tokenizer) or the tokens per image (cost.image_tokens), \
             and check that the server honours max_tokens",
            over.actual as f64 / NANO,
            over.reserved as f64 / NANO
        ));
    }

    /// Log a line to the run's events (the event sink removes secrets).
    pub fn log(&self, text: impl Into<String>) {
        self.ctx.log(text);
    }
}
