//! The Slurm runner: each node the scheduler starts becomes one batch job
//! (`sbatch --parsable`) that runs `reasongen exec-node` against the same store. The
//! DAG stays in the controller. A node counts as done only once its run key is in the
//! store, so a requeued, preempted or duplicated job is harmless; a job that ends
//! without the key is resubmitted up to `retries` times, then the node fails with the
//! tail of the job's log. Cancelling the run `scancel`s its jobs.

pub mod array;
pub mod follow;
pub mod queue;

use crate::events::Event;
use crate::executor::node::{RunEnv, events_file};
use crate::executor::{NodeJob, NodeRunner, Outcome};
use crate::registry::BoxFuture;
use crate::stage::{Resources, StageError};
use follow::{Finish, Follow};
use queue::{JobState, Queue};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How jobs are submitted.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// The `reasongen` binary the jobs run (visible at this path on the compute nodes).
    pub program: PathBuf,
    /// The store as the controller was given it, passed unchanged to `exec-node`.
    pub store: String,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// `--mem` of every job, in MiB (Slurm's default if unset).
    pub mem_mb: Option<u64>,
    /// `--time` of every job, in minutes (the partition's default if unset).
    pub time_minutes: Option<u32>,
    /// Resubmissions of a job that ended without the node's result (and of the array
    /// tasks of shards that ended without their items done).
    pub retries: u32,
    /// Shards of a shardable node's items, each an array task before the node's own
    /// job ([`array`]); 1 for none.
    pub shards: u32,
    /// How often all jobs are polled.
    pub poll: Duration,
}

/// Lines of a failed job's log shown with the error.
const LOG_TAIL_LINES: usize = 20;

pub struct SlurmRunner {
    options: Arc<SlurmOptions>,
    queue: Arc<Queue>,
}

impl SlurmRunner {
    /// A runner whose poller runs on the current tokio runtime.
    pub fn start(options: SlurmOptions) -> SlurmRunner {
        SlurmRunner {
            queue: Queue::start(options.poll),
            options: Arc::new(options),
        }
    }
}

impl NodeRunner for SlurmRunner {
    fn run_node(&self, env: Arc<RunEnv>, job: NodeJob) -> BoxFuture<Result<Outcome, StageError>> {
        let (options, queue) = (self.options.clone(), self.queue.clone());
        Box::pin(async move { run_as_jobs(&options, &queue, &env, job).await })
    }
}

async fn run_as_jobs(
    options: &SlurmOptions,
    queue: &Queue,
    env: &RunEnv,
    job: NodeJob,
) -> Result<Outcome, StageError> {
    let spec = &job.spec;
    let node = spec.node.as_str();
    let run_key = spec.run_key();
    spec.save(&env.store, &env.run_id)?;
    let mut follow = Follow::new(&env.store, &env.run_id, events_file(node));
    if array::wanted(options, &job) {
        array::run_shards(options, queue, env, &job).await?;
    }
    let attempts = options.retries + 1;
    for attempt in 1..=attempts {
        let log = env
            .store
            .run_file_path(&env.run_id, &format!("nodes/{node}.{attempt}.log"));
        let placement = Placement {
            granted: job.granted,
            ranks: job.prepared.ranks(),
        };
        let id = submit(options, &env.run_id, node, &placement, &log, None).await?;
        message(
            env,
            node,
            format!("Slurm job {id} submitted (attempt {attempt}/{attempts})"),
        );
        follow.restart();
        queue.track(&id);
        let ended = wait(queue, &id, env, node, &mut follow).await;
        queue.untrack(&id);
        follow.pump(env, node);
        follow.stop_progress(env, node);
        let Some(ended) = ended else {
            // Cancelled: stop the job; what it half wrote is never published.
            let _ = queue::run("scancel", &[&id]).await;
            return Err(StageError::cancelled());
        };
        let record = env.store.lookup(&run_key)?;
        if record.is_some() {
            message(
                env,
                node,
                format!("Slurm job {id} done: the node's result is in the store"),
            );
        }
        match (record, follow.finish) {
            (Some(rec), Some(Finish::Cached)) => return Ok(Outcome::Cached { digest: rec.digest }),
            (Some(rec), Some(Finish::Ran { unchanged })) => {
                return Ok(Outcome::Ran {
                    digest: rec.digest,
                    duration_ms: rec.lineage.duration_ms,
                    unchanged,
                });
            }
            // Its events were lost, but the key is there (a forced node must show it ran).
            (Some(rec), None) if !spec.force => {
                return Ok(Outcome::Ran {
                    digest: rec.digest,
                    duration_ms: rec.lineage.duration_ms,
                    unchanged: false,
                });
            }
            _ => {}
        }
        // A duplicate of a requeued job may still be running; it could only publish
        // the same result, but stop it before trying again.
        let _ = queue::run("scancel", &[&id]).await;
        let why = describe(&ended);
        if attempt < attempts {
            message(
                env,
                node,
                format!("Slurm job {id} ended {why} without the node's result; resubmitting"),
            );
        } else {
            return Err(StageError::msg(format!(
                "Slurm job {id} ended {why} without the node's result after {attempts} attempt(s); last lines of {}:\n{}",
                log.display(),
                log_tail(&log, LOG_TAIL_LINES)
            )));
        }
    }
    unreachable!("the last attempt returns")
}

/// Wait until job `id` is finished (`None` if the run is cancelled first), passing on
/// the node's events as they come.
async fn wait(
    queue: &Queue,
    id: &str,
    env: &RunEnv,
    node: &str,
    follow: &mut Follow,
) -> Option<JobState> {
    let mut polled = queue.subscribe();
    loop {
        follow.pump(env, node);
        if let Some(s) = queue.state(id)
            && s.is_finished()
        {
            return Some(s);
        }
        tokio::select! {
            _ = polled.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = env.cancel.cancelled() => return None,
        }
    }
}

/// What one job of a node asks for: the resources of each rank, and the ranks.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    pub granted: Resources,
    pub ranks: u32,
}

/// Submit one job for `node`, or with `array` (task ids, shard count) a job array
/// whose tasks each run one shard of its items; its id.
async fn submit(
    options: &SlurmOptions,
    run_id: &str,
    node: &str,
    placement: &Placement,
    log: &Path,
    array: Option<(&str, u32)>,
) -> Result<String, StageError> {
    let args = job_args(options, run_id, node, placement, log, array);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = queue::run("sbatch", &args)
        .await
        .map_err(|e| StageError::msg(format!("submitting node `{node}`: {e}")))?;
    // `--parsable` prints `id` or `id;cluster`.
    let id = out.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(StageError::msg(format!(
            "submitting node `{node}`: sbatch printed `{}`, not a job id",
            out.trim()
        )));
    }
    Ok(id)
}

/// The `sbatch` arguments of one job for `node` running `exec-node`, or with `array`
/// (task ids, shard count) of a job array whose task k runs shard k of its items.
fn job_args(
    options: &SlurmOptions,
    run_id: &str,
    node: &str,
    placement: &Placement,
    log: &Path,
    array: Option<(&str, u32)>,
) -> Vec<String> {
    let mut command = [
        options.program.display().to_string(),
        "--store".into(),
        options.store.clone(),
        "exec-node".into(),
        "--run".into(),
        run_id.to_string(),
        "--node".into(),
        node.to_string(),
    ]
    .iter()
    .map(|a| shell_quote(a))
    .collect::<Vec<_>>()
    .join(" ");
    let mut args = Vec::new();
    if let Some((tasks, count)) = array {
        // The shell of the batch script expands the task's own id.
        command.push_str(&format!(" --shard \"${{SLURM_ARRAY_TASK_ID}}/{count}\""));
        args.push(format!("--array={tasks}"));
    }
    args.extend(sbatch_args(options, node, placement, log, &command));
    args
}

/// The arguments of `sbatch` for one node: its declared resources and the run's
/// placement options. A node of several ranks is one task per rank, started by
/// `srun` inside the job (each rank reads its place from `SLURM_PROCID` and
/// `SLURM_NTASKS`), with its GPUs per task.
pub fn sbatch_args(
    options: &SlurmOptions,
    node: &str,
    placement: &Placement,
    log: &Path,
    command: &str,
) -> Vec<String> {
    let Placement { granted, ranks } = *placement;
    let mut args = vec![
        "--parsable".to_string(),
        format!("--job-name=reasongen-{node}"),
        format!("--output={}", log.display()),
        format!("--ntasks={}", ranks.max(1)),
        format!("--cpus-per-task={}", granted.threads.max(1)),
    ];
    if granted.gpus > 0 {
        args.push(if ranks > 1 {
            format!("--gpus-per-task={}", granted.gpus)
        } else {
            format!("--gres=gpu:{}", granted.gpus)
        });
    }
    let optional = [
        ("--partition", options.partition.clone()),
        ("--account", options.account.clone()),
        ("--qos", options.qos.clone()),
        ("--mem", options.mem_mb.map(|m| format!("{m}M"))),
        ("--time", options.time_minutes.map(|m| m.to_string())),
    ];
    for (flag, value) in optional {
        if let Some(v) = value {
            args.push(format!("{flag}={v}"));
        }
    }
    args.push(if ranks > 1 {
        format!("--wrap=srun {command}")
    } else {
        format!("--wrap={command}")
    });
    args
}

fn describe(s: &JobState) -> String {
    if s.reason.is_empty() || s.reason == "None" {
        s.state.clone()
    } else {
        format!("{} ({})", s.state, s.reason)
    }
}

fn message(env: &RunEnv, node: &str, text: String) {
    env.events.emit(Event::Message {
        node: node.to_string(),
        level: "info".into(),
        text,
    });
}

/// The last `n` lines of a log, or why there are none.
fn log_tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(no log: {e})"),
    }
}

/// `s` as one POSIX shell word.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SlurmOptions {
        SlurmOptions {
            program: "/opt/bin/reasongen".into(),
            store: "s3://bucket/x".into(),
            partition: Some("gpu".into()),
            account: None,
            qos: Some("high".into()),
            mem_mb: Some(4096),
            time_minutes: None,
            retries: 2,
            shards: 1,
            poll: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_node_asks_for_its_declared_resources_and_the_run_placement() {
        let granted = Resources {
            threads: 4,
            gpus: 2,
            llm_slots: 0,
        };
        let one = Placement { granted, ranks: 1 };
        let args = sbatch_args(&options(), "sft", &one, Path::new("l/sft.1.log"), "x y");
        for want in [
            "--cpus-per-task=4",
            "--gres=gpu:2",
            "--partition=gpu",
            "--qos=high",
            "--mem=4096M",
            "--output=l/sft.1.log",
            "--wrap=x y",
        ] {
            assert!(
                args.contains(&want.to_string()),
                "{want} missing from {args:?}"
            );
        }
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--account") || a.starts_with("--time"))
        );
        assert!(args.contains(&"--ntasks=1".to_string()), "{args:?}");
        let cpu_only = Placement {
            granted: Resources::default(),
            ranks: 1,
        };
        let args = sbatch_args(&options(), "a", &cpu_only, Path::new("l"), "x");
        assert!(!args.iter().any(|a| a.starts_with("--gres")), "{args:?}");
    }

    #[test]
    fn a_node_of_several_ranks_is_one_job_whose_tasks_srun_starts() {
        let ranks = Placement {
            granted: Resources {
                threads: 2,
                gpus: 1,
                llm_slots: 0,
            },
            ranks: 4,
        };
        let args = sbatch_args(
            &options(),
            "sft",
            &ranks,
            Path::new("l"),
            "reasongen exec-node",
        );
        for want in [
            "--ntasks=4",
            "--cpus-per-task=2",
            "--gpus-per-task=1",
            "--wrap=srun reasongen exec-node",
        ] {
            assert!(
                args.contains(&want.to_string()),
                "{want} missing from {args:?}"
            );
        }
        assert!(!args.iter().any(|a| a.starts_with("--gres")), "{args:?}");
    }

    #[test]
    fn a_shard_array_runs_each_task_on_its_own_shard() {
        let one = Placement {
            granted: Resources::default(),
            ranks: 1,
        };
        let log = Path::new("l/%a.log");
        let args = job_args(&options(), "r1", "captions", &one, log, Some(("0,2", 3)));
        assert_eq!(args[0], "--array=0,2");
        let wrap = args.iter().find(|a| a.starts_with("--wrap=")).unwrap();
        assert!(
            wrap.ends_with(
                "exec-node --run r1 --node captions --shard \"${SLURM_ARRAY_TASK_ID}/3\""
            ),
            "{wrap}"
        );
        let whole = job_args(&options(), "r1", "captions", &one, log, None);
        assert!(
            !whole
                .iter()
                .any(|a| a.starts_with("--array") || a.contains("--shard")),
            "{whole:?}"
        );
    }

    #[test]
    fn shell_words_survive_quoting() {
        assert_eq!(shell_quote("runs/a-1"), "runs/a-1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
