//! The stage that runs any [`Task`]: two passes over the input table.
//!
//! An endpoint `builtin:shapes-vlm` starts the shapes VLM on loopback for the run
//! ([`eval::vlm::start_builtin`]): the exact teacher answers captions and augments.
//!
//! 1. *Collect*: the reader builds each row's request and key; the executor (online
//!    or batch) makes sure the memo holds an answer for each key, or records why not.
//!    A progress line and the node's counters are written every `progress_secs`.
//! 2. *Assemble*: the input again, in order: each row becomes one output row or one
//!    failure row, plus one ledger row.
//!
//! Then the policy: `require_all` fails the stage if any row failed, after writing the
//! failures to `logs/<node>.failures.jsonl` in the run's folder; `allow_failures`
//! fails it only past the given fraction, and otherwise publishes the failures table
//! with the output.

use super::assemble::{Assembled, Origin, Paths, assemble};
use super::task::{Task, shape};
use super::{estimate, reader};
use datasets::table::TableReader;
use eval::vlm::{checkable, start_builtin};
use llm::config::{Executor, LlmConfig, Policy};
use llm::cost::TokenCounter;
use llm::failure::Job;
use llm::{Session, batch, online};
use pipeline::estimate::{EstimateContext, SpendEstimate};
use pipeline::shard::Shard;
use pipeline::{
    ArtifactType, Bindings, InputSpec, Output, OutputDecl, Resources, Stage, StageContext,
    StageError,
};
use std::marker::PhantomData;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Memo namespace of answers.
pub const ANSWERS_NAMESPACE: &str = "llm.chat";
/// The failures as JSONL in the node's scratch folder (kept in the run's logs when the
/// policy fails the stage).
const FAILURES_JSONL: &str = "failures.jsonl";

/// The stage of task `T`.
pub struct LlmStage<T>(PhantomData<fn() -> T>);

impl<T> LlmStage<T> {
    pub const fn new() -> Self {
        LlmStage(PhantomData)
    }
}

impl<T> Default for LlmStage<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Task> Stage for LlmStage<T> {
    type Config = LlmConfig;
    const KIND: &'static str = T::KIND;
    const VERSION: u32 = 1;
    const DOC: &'static str = T::DOC;
    const INPUTS: &'static [InputSpec] = T::INPUTS;
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("rationale"));
    const SPENDS: bool = true;
    const SHARDABLE: bool = true;

    fn resources(config: &LlmConfig) -> Resources {
        Resources {
            llm_slots: match config.executor {
                Executor::Online => config.limits.concurrency,
                Executor::Batch => 1,
            },
            ..Resources::default()
        }
    }

    fn validate(config: &LlmConfig, _bindings: &Bindings) -> Result<(), String> {
        checkable(config).check(T::schema().is_some())?;
        shape::<T>(config, TokenCounter::from_bytes(&config.cost)).map(|_| ())
    }

    fn estimate(
        config: &LlmConfig,
        ctx: &EstimateContext,
    ) -> Result<Option<SpendEstimate>, StageError> {
        estimate::estimate::<T>(config, ctx).map(Some)
    }

    async fn run(&self, config: LlmConfig, ctx: StageContext) -> Result<Output, StageError> {
        let ctx = Arc::new(ctx);
        let result = run::<T>(&config, &ctx).await;
        // Messages may quote what servers sent; a server may echo the key.
        result.map_err(|e| StageError::msg(ctx.redact(&e.to_string())))
    }
}

async fn run<T: Task>(config: &LlmConfig, ctx: &Arc<StageContext>) -> Result<Output, StageError> {
    let input = ctx.input(T::INPUTS[0].name)?.dir.clone();
    let counter = TokenCounter::new(&config.cost, &ctx.recipe_dir).map_err(StageError::msg)?;
    // Built before the shapes VLM's port replaces `builtin:shapes-vlm`, so that request
    // keys, which hold the base URL, stay the same across runs.
    let shape = Arc::new(shape::<T>(config, counter).map_err(StageError::msg)?);
    let mut config = config.clone();
    let server = start_builtin(&mut config).map_err(StageError::msg)?;
    if let Some(s) = &server {
        ctx.log(format!("the shapes VLM answers at {}", s.url()));
    }
    let config = &config;
    let rows = TableReader::open(&input)?.row_count()?;
    ctx.progress.set_total(rows, "rows");
    let concurrency = config.limits.concurrency as usize;
    let session = Session::open(
        config,
        ctx.clone(),
        rows,
        ANSWERS_NAMESPACE,
        shape.expect().clone(),
        true,
    )?;

    // Pass 1: answers into the memo.
    let keys = ctx.scratch_dir.join("keys.txt");
    let (tx, rx) = mpsc::channel(concurrency.clamp(16, 256));
    let reading = reader::start::<T>(input.clone(), shape.clone(), keys.clone(), tx);
    let rx = match ctx.shard {
        Some(shard) => shard_jobs(rx, shard, concurrency),
        None => rx,
    };
    let mut reporter = JoinSet::new();
    reporter.spawn(llm::session_report(session.clone(), config.progress_secs));
    let collected = match config.executor {
        Executor::Online => online::collect(session.clone(), rx).await,
        Executor::Batch => {
            batch::collect(session.clone(), rx, &config.batch, &ctx.scratch_dir).await
        }
    };
    reporter.abort_all();
    let read = reading
        .await
        .map_err(|e| StageError::msg(format!("the input reader stopped: {e}")))??;
    let collected = collected?;
    if read != rows {
        return Err(StageError::msg(format!(
            "read {read} rows of the {rows} the table's footers announce"
        )));
    }
    session.log(format!("requests done: {}", session.ledger.line()));
    if let Some(stop) = &collected.stop {
        session.log(format!("stopped sending: {stop}"));
    }
    session.ledger.publish(ctx);
    if let Some(shard) = ctx.shard {
        // The node's own run assembles the tables from the memo.
        ctx.log(format!("shard {shard}: its rows' answers are in the memo"));
        return Ok(Output {
            rows: None,
            schema: None,
            meta: serde_json::Value::Null,
        });
    }

    // Pass 2: the tables.
    let stop = collected.stop.clone();
    let assembled = {
        let ctx = ctx.clone();
        let reread = ctx.memo_uncounted(ANSWERS_NAMESPACE)?;
        let origin = Origin {
            model: config.endpoint.model.clone(),
            template: shape.template().name.clone(),
            template_version: shape.template().version,
        };
        tokio::task::spawn_blocking(move || {
            let failures_jsonl = ctx.scratch_dir.join(FAILURES_JSONL);
            let paths = Paths {
                input: &input,
                keys: &keys,
                out: &ctx.out_dir,
                failures_jsonl: &failures_jsonl,
            };
            assemble::<T>(paths, &reread, &collected, &origin, &|t| ctx.redact(t))
        })
        .await
        .map_err(|e| StageError::msg(format!("writing the tables stopped: {e}")))??
    };
    apply_policy(config, ctx, &assembled, stop.as_deref())?;
    let mut meta = assembled.summary.meta();
    meta["failed_rows"] = assembled.counts.failed.into();
    Ok(Output {
        rows: Some(assembled.summary.rows),
        schema: assembled.summary.schema_id.clone(),
        meta,
    })
}

/// The jobs of `jobs` whose request keys are `shard`'s; the others are left to the
/// other shards.
fn shard_jobs(mut jobs: mpsc::Receiver<Job>, shard: Shard, capacity: usize) -> mpsc::Receiver<Job> {
    let (tx, rx) = mpsc::channel(capacity.clamp(16, 256));
    tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            if shard.holds(&job.key) && tx.send(job).await.is_err() {
                return;
            }
        }
    });
    rx
}

fn apply_policy(
    config: &LlmConfig,
    ctx: &StageContext,
    assembled: &Assembled,
    stop: Option<&str>,
) -> Result<(), StageError> {
    let c = &assembled.counts;
    if c.failed == 0 {
        return Ok(());
    }
    let fraction = c.failed as f64 / c.rows.max(1) as f64;
    let reasons: Vec<String> = c
        .by_reason
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let summary = format!(
        "{} of {} rows failed ({})",
        c.failed,
        c.rows,
        reasons.join(", ")
    );
    let (allowed, rule) = match config.policy {
        Policy::RequireAll => (false, "policy require_all".to_string()),
        Policy::AllowFailures(max) => (fraction <= max, format!("policy allow_failures = {max}")),
    };
    if allowed {
        ctx.log(format!(
            "{summary}: within {rule}; they are in the artifact's failures/ table"
        ));
        return Ok(());
    }
    let logs = ctx.log_dir();
    std::fs::create_dir_all(&logs).map_err(|e| StageError::from(e).context(logs.display()))?;
    let kept = logs.join(format!("{}.failures.jsonl", ctx.node));
    std::fs::copy(ctx.scratch_dir.join(FAILURES_JSONL), &kept)
        .map_err(|e| StageError::from(e).context(kept.display()))?;
    let stop = stop
        .map(|s| format!("; stopped sending: {s}"))
        .unwrap_or_default();
    Err(StageError::msg(format!(
        "{summary}, more than {rule} allows{stop}; answers are kept in the memo, so a rerun sends only the failed rows. All failures: {}. First: {}",
        kept.display(),
        c.quoted.join("; ")
    )))
}
