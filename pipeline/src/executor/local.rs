//! The local runner: runs a node in this process, in the scheduler's tokio runtime (as
//! one process: a data-parallel stage sees a world of one).

use crate::executor::node::{Rank, RunEnv, execute};
use crate::executor::{NodeJob, NodeRunner, Outcome};
use crate::registry::BoxFuture;
use crate::stage::StageError;
use std::sync::Arc;

/// Runs each node in this process (`reasongen run` without `--executor`).
pub struct LocalRunner;

impl NodeRunner for LocalRunner {
    fn run_node(&self, env: Arc<RunEnv>, job: NodeJob) -> BoxFuture<Result<Outcome, StageError>> {
        Box::pin(async move {
            execute(
                &env,
                &job.spec,
                job.prepared.as_ref(),
                job.granted.threads,
                job.devices,
                Rank::Leader,
            )
            .await
        })
    }
}
