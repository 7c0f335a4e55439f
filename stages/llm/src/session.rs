//! What the requests of one node run share: the stage context (logs, counters,
//! progress, cancellation), the client, the gate, backoff, the ledger, the budgets (the
//! node's `budget_usd` and the run's `--budget-usd`), the memo (read here, written
//! through the group-commit writer) and what a valid answer looks like.

use super::answer::{Answer, Expect};
use super::backoff::Backoff;
use super::client::Client;
use super::config::{LimitsConfig, LlmConfig};
use super::failure::{Collected, Job};
use super::gate::Gate;
use super::ledger::Ledger;
use super::memo_writer::MemoWriter;
use super::online;
use pipeline::budget::{Budget, NANO, Overrun};
use pipeline::memo::Memo;
use pipeline::{Digest, StageContext, StageError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub struct Session {
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
    /// The jobs are the node's rows: each resolved one advances its progress.
    rows: bool,
}

impl Session {
    /// A session for `requests` requests of `config`, answers kept in the memo namespace
    /// `namespace` and validated as `expect` says; with `rows`, the requests are the
    /// node's rows and advance its progress.
    pub fn open(
        config: &LlmConfig,
        ctx: Arc<StageContext>,
        requests: u64,
        namespace: &str,
        expect: Expect,
        rows: bool,
    ) -> Result<Arc<Session>, StageError> {
        let budgets = budgets(config, &ctx)?;
        let concurrency = config.limits.concurrency as usize;
        let client = Client::new(&config.endpoint, concurrency, &|s| ctx.add_secret(s))
            .map_err(StageError::msg)?;
        let memo = ctx.memo(namespace)?;
        Ok(Arc::new(Session {
            client,
            gate: Gate::new(&config.limits, budgets.clone()),
            backoff: Backoff::new(&config.limits),
            ledger: Ledger::new(config, requests, budgets.clone()),
            budgets,
            writer: MemoWriter::start(memo.clone()),
            memo,
            expect,
            limits: config.limits.clone(),
            ctx,
            rows,
        }))
    }

    /// Resolve `jobs` online (answers into the memo), writing the progress line and
    /// the counters every `progress_secs`.
    pub async fn resolve(
        self: &Arc<Session>,
        jobs: Vec<Job>,
        progress_secs: f64,
    ) -> Result<Collected, StageError> {
        let (tx, rx) = mpsc::channel(jobs.len().max(1));
        for job in jobs {
            tx.send(job).await.expect("the channel holds every job");
        }
        drop(tx);
        let reporter = tokio::spawn(report(self.clone(), progress_secs));
        let collected = online::collect(self.clone(), rx).await;
        reporter.abort();
        self.ledger.publish(&self.ctx);
        collected
    }

    /// The stored answer of a request, if any (a record this build cannot read is
    /// treated as absent, and replaced when the request is answered again).
    pub fn lookup(&self, key: &Digest) -> Result<Option<Answer>, StageError> {
        Ok(self.memo.get_json(key)?)
    }

    /// One more job resolved.
    pub fn resolved(&self) {
        if self.rows {
            self.ctx.progress.inc(1);
        }
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

/// The caps a node spends under: its own `budget_usd`, then the run's `--budget-usd`,
/// which needs each request's cost bounded too.
fn budgets(config: &LlmConfig, ctx: &StageContext) -> Result<Vec<Arc<Budget>>, StageError> {
    let mut budgets: Vec<Arc<Budget>> = config
        .budget_usd
        .map(|usd| Budget::new("budget_usd", usd))
        .into_iter()
        .collect();
    if let Some(run) = &ctx.run_budget {
        config
            .bounded("the run's --budget-usd")
            .map_err(StageError::msg)?;
        budgets.push(run.clone());
    }
    Ok(budgets)
}

/// Every `secs`, the progress line and the counters.
pub async fn report(session: Arc<Session>, secs: f64) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(secs));
    tick.tick().await;
    loop {
        tick.tick().await;
        session.log(session.ledger.line());
        session.ledger.publish(&session.ctx);
    }
}
