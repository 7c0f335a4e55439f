//! `reasongen exec-node` (one node of a run, in any process that opens its store) and
//! the `--executor` options of `reasongen run`. The scheduling itself is the engine's
//! (`pipeline::executor`).

use anyhow::{Result, bail};
use pipeline::Store;
use pipeline::console::{Console, ConsoleMode};
use pipeline::executor::slurm::{SlurmOptions, SlurmRunner};
use pipeline::executor::{LocalRunner, NodeRunner, Outcome};
use pipeline::shard::Shard;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct ExecNodeArgs {
    /// The run the node belongs to (its description is in the store's run folder).
    #[arg(long)]
    run: String,
    /// The node's id.
    #[arg(long)]
    node: String,
    /// Only this shard `k/n` of the node's items, into the item memo, publishing
    /// nothing (a shardable node's Slurm array task; the node's own run publishes).
    #[arg(long, value_name = "K/N", value_parser = Shard::parse)]
    shard: Option<Shard>,
}

/// Where a run's nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Executor {
    /// In this process.
    Local,
    /// Each node as a Slurm batch job running `reasongen exec-node` (shared store).
    Slurm,
}

#[derive(clap::Args)]
pub struct ExecutorArgs {
    /// Where nodes run.
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    executor: Executor,
    /// Slurm partition of the jobs (`--executor slurm`).
    #[arg(long, value_name = "NAME")]
    slurm_partition: Option<String>,
    /// Slurm account charged for the jobs.
    #[arg(long, value_name = "NAME")]
    slurm_account: Option<String>,
    /// Slurm QoS of the jobs.
    #[arg(long, value_name = "NAME")]
    slurm_qos: Option<String>,
    /// Memory of each job, in MiB (Slurm's default if unset).
    #[arg(long, value_name = "MIB")]
    slurm_mem_mb: Option<u64>,
    /// Time limit of each job, in minutes (the partition's default if unset).
    #[arg(long, value_name = "MINUTES")]
    slurm_time: Option<u32>,
    /// Run each node whose stage splits its items into shards (LLM stages) as a
    /// Slurm job array of this many shard tasks, then its own job, which finds every
    /// item memoised and publishes (1: no array).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    slurm_shards: u32,
    /// Resubmissions of a job that ended without its node's result.
    #[arg(long, default_value_t = 2)]
    slurm_retries: u32,
    /// Milliseconds between polls of the jobs (one squeue for all).
    #[arg(long, default_value_t = 1000)]
    slurm_poll_ms: u64,
}

impl ExecutorArgs {
    pub fn is_local(&self) -> bool {
        self.executor == Executor::Local
    }

    /// The runner (call inside the run's tokio runtime: Slurm's poller runs on it).
    pub fn runner(&self, store: &Path) -> Result<Arc<dyn NodeRunner>> {
        if self.is_local() {
            return Ok(Arc::new(LocalRunner));
        }
        Ok(Arc::new(SlurmRunner::start(SlurmOptions {
            program: std::env::current_exe()?,
            store: store.display().to_string(),
            partition: self.slurm_partition.clone(),
            account: self.slurm_account.clone(),
            qos: self.slurm_qos.clone(),
            mem_mb: self.slurm_mem_mb,
            time_minutes: self.slurm_time,
            retries: self.slurm_retries,
            shards: self.slurm_shards,
            poll: Duration::from_millis(self.slurm_poll_ms.max(50)),
        })))
    }

    /// Options that only the local executor supports.
    pub fn check(&self, budget_usd: Option<f64>) -> Result<()> {
        if !self.is_local() && budget_usd.is_some() {
            bail!(
                "--budget-usd needs --executor local: a run-wide money cap is shared in one process (each node's own budget_usd still applies)"
            );
        }
        Ok(())
    }
}

pub fn exec_node(store_dir: &Path, quiet: bool, args: ExecNodeArgs) -> Result<ExitCode> {
    let store = Store::open(store_dir)?;
    let console = Console::new(if quiet {
        ConsoleMode::Quiet
    } else {
        ConsoleMode::Lines
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cancel = CancellationToken::new();
    let registry = crate::registry();
    let result = runtime.block_on(async {
        let c = cancel.clone();
        tokio::spawn(async move {
            // Slurm sends SIGTERM before SIGKILL; Ctrl-C by hand.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            c.cancel();
        });
        pipeline::executor::remote::exec_node(
            store,
            &registry,
            &args.run,
            &args.node,
            args.shard,
            console.clone(),
            cancel,
        )
        .await
    });
    runtime.shutdown_background();
    match result {
        Ok(Outcome::Ran { digest, .. }) | Ok(Outcome::Cached { digest }) => {
            console.line(&format!("node `{}`: {}", args.node, digest.short()));
            Ok(ExitCode::SUCCESS)
        }
        // Another rank than 0 of a data-parallel node: rank 0 publishes.
        Ok(Outcome::Skipped { reason }) => {
            console.line(&format!("node `{}`: {reason}", args.node));
            Ok(ExitCode::SUCCESS)
        }
        Ok(other) => bail!("node `{}` ended as {other:?}", args.node),
        Err(e) => bail!("node `{}` of run {}: {e}", args.node, args.run),
    }
}
