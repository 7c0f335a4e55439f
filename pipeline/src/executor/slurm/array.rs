//! A shardable node's items as a Slurm job array (`--slurm-shards n`): before the
//! node's own job, `sbatch --array` runs `exec-node --shard k/n` for each shard k,
//! each filling the item memo for its shard's items and publishing nothing. Tasks that
//! end without their shard's done file are submitted again, up to the retry limit.
//! The node's own job (the merge) then runs as usual and finds the items memoised; it
//! recomputes whatever is still missing, so the node's result never depends on the
//! array. Submitting and watching the node's own job is [`super`]'s.

use super::queue::{self, Queue};
use super::{Placement, SlurmOptions, message, submit};
use crate::executor::NodeJob;
use crate::executor::node::RunEnv;
use crate::executor::remote::shard_done_file;
use crate::shard::Shard;
use crate::stage::StageError;
use std::time::Duration;

/// Whether `job` runs as an array of shards first.
pub fn wanted(options: &SlurmOptions, job: &NodeJob) -> bool {
    options.shards > 1 && job.prepared.shardable() && job.prepared.ranks() == 1
}

/// Run the shards of `job`'s items as array tasks until each has its done file or the
/// attempts are spent (`Err` only if submitting fails or the run is cancelled).
pub async fn run_shards(
    options: &SlurmOptions,
    queue: &Queue,
    env: &RunEnv,
    job: &NodeJob,
) -> Result<(), StageError> {
    let node = job.spec.node.as_str();
    let count = options.shards;
    let mut pending: Vec<Shard> = (0..count)
        .map(|k| Shard::new(k, count).expect("k is below the count"))
        .collect();
    let attempts = options.retries + 1;
    for attempt in 1..=attempts {
        let list: Vec<String> = pending.iter().map(|s| s.index().to_string()).collect();
        let list = list.join(",");
        let log = env.store.run_file_path(
            &env.run_id,
            &format!("nodes/{node}.shards.{attempt}.%a.log"),
        );
        let placement = Placement {
            granted: job.granted,
            ranks: 1,
        };
        let array = Some((list.as_str(), count));
        let id = submit(options, &env.run_id, node, &placement, &log, array).await?;
        message(
            env,
            node,
            format!(
                "Slurm array {id} submitted: shard task(s) {list} of {count} (attempt {attempt}/{attempts})"
            ),
        );
        let tasks: Vec<String> = pending
            .iter()
            .map(|s| format!("{id}_{}", s.index()))
            .collect();
        for t in &tasks {
            queue.track(t);
        }
        let ended = wait_all(queue, &tasks, env).await;
        for t in &tasks {
            queue.untrack(t);
        }
        if !ended {
            let _ = queue::run("scancel", &[&id]).await;
            return Err(StageError::cancelled());
        }
        let mut left = Vec::new();
        for shard in pending {
            if env
                .store
                .get_run_file(&env.run_id, &shard_done_file(node, shard))?
                .is_none()
            {
                left.push(shard);
            }
        }
        pending = left;
        if pending.is_empty() {
            message(
                env,
                node,
                format!("Slurm array {id} done: every shard's items are memoised"),
            );
            return Ok(());
        }
        let missing: Vec<String> = pending.iter().map(Shard::to_string).collect();
        let then = if attempt < attempts {
            "resubmitting them"
        } else {
            "the node's own job does their items"
        };
        message(
            env,
            node,
            format!(
                "Slurm array {id}: shard(s) {} ended without their items done; {then}",
                missing.join(", ")
            ),
        );
    }
    Ok(())
}

/// Wait until every task in `tasks` is finished (`false` if the run is cancelled
/// first).
async fn wait_all(queue: &Queue, tasks: &[String], env: &RunEnv) -> bool {
    let mut polled = queue.subscribe();
    loop {
        if tasks
            .iter()
            .all(|t| queue.state(t).is_some_and(|s| s.is_finished()))
        {
            return true;
        }
        tokio::select! {
            _ = polled.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = env.cancel.cancelled() => return false,
        }
    }
}
