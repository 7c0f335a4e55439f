//! Watching Slurm jobs: one batched `squeue` per interval for every job the run has in
//! flight, with `scontrol show job` for a job squeue no longer lists. Runners read the
//! last seen state and wait for the next poll; nothing here submits or cancels.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::watch;

/// A job's state as Slurm names it (`RUNNING`, `COMPLETED`, ...) and its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobState {
    pub state: String,
    pub reason: String,
}

impl JobState {
    /// Whether the job will not run again by itself (a requeued job goes back to
    /// `PENDING`, so it is not finished).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED"
                | "FAILED"
                | "CANCELLED"
                | "TIMEOUT"
                | "NODE_FAIL"
                | "OUT_OF_MEMORY"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "PREEMPTED"
                | "SPECIAL_EXIT"
                | GONE
        )
    }
}

/// What a job is taken to be once neither squeue nor scontrol knows it.
const GONE: &str = "UNKNOWN (no longer known to Slurm)";

/// Lines of `squeue -h -t all -o '%i|%T|%r'`, by job id.
pub fn parse_squeue(text: &str) -> BTreeMap<String, JobState> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(3, '|');
            let id = parts.next()?.trim();
            let state = parts.next()?.trim();
            let reason = parts.next().unwrap_or("").trim();
            (!id.is_empty() && !state.is_empty()).then(|| {
                (
                    id.to_string(),
                    JobState {
                        state: state.to_string(),
                        reason: reason.to_string(),
                    },
                )
            })
        })
        .collect()
}

/// `JobState=` and `Reason=` of `scontrol show job <id>`.
pub fn parse_scontrol(text: &str) -> Option<JobState> {
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_string)
    };
    Some(JobState {
        state: field("JobState=")?,
        reason: field("Reason=").unwrap_or_default(),
    })
}

/// The jobs a run waits on and their last seen states, refreshed by one poller task.
pub struct Queue {
    states: Mutex<BTreeMap<String, Option<JobState>>>,
    polled: watch::Sender<u64>,
}

impl Queue {
    /// A queue polled every `interval` by a task on the current tokio runtime, which
    /// ends when the queue is dropped.
    pub fn start(interval: Duration) -> Arc<Queue> {
        let queue = Arc::new(Queue {
            states: Mutex::new(BTreeMap::new()),
            polled: watch::channel(0).0,
        });
        tokio::spawn(poll_forever(Arc::downgrade(&queue), interval));
        queue
    }

    pub fn track(&self, id: &str) {
        self.lock().insert(id.to_string(), None);
    }

    pub fn untrack(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The state seen at the last poll (`None` before the first poll after `track`).
    pub fn state(&self, id: &str) -> Option<JobState> {
        self.lock().get(id).cloned().flatten()
    }

    /// Changes after every poll.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.polled.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<JobState>>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn poll(&self) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        let listed = match run("squeue", &["-h", "-t", "all", "-o", "%i|%T|%r"]).await {
            Ok(text) => parse_squeue(&text),
            // A failed poll changes nothing; the next one tries again.
            Err(_) => return,
        };
        for id in ids {
            let state = match listed.get(&id) {
                Some(s) => Some(s.clone()),
                None => match run("scontrol", &["show", "job", &id]).await {
                    Ok(text) => parse_scontrol(&text),
                    Err(_) => Some(JobState {
                        state: GONE.to_string(),
                        reason: String::new(),
                    }),
                },
            };
            if let Some(slot) = self.lock().get_mut(&id) {
                *slot = state;
            }
        }
        self.polled.send_modify(|n| *n += 1);
    }
}

async fn poll_forever(queue: Weak<Queue>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(q) = queue.upgrade() else { return };
        q.poll().await;
    }
}

/// Run a Slurm command; its stdout, or its stderr as the error.
pub async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running `{program}`: {e} (is Slurm installed and on PATH?)"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_give_states_by_job() {
        let m = parse_squeue("12|RUNNING|None\n13|PENDING|Resources\n\n14|COMPLETED|\n");
        assert_eq!(m.len(), 3);
        assert_eq!(m["13"].reason, "Resources");
        assert!(!m["12"].is_finished() && !m["13"].is_finished());
        assert!(m["14"].is_finished());
    }

    #[test]
    fn scontrol_gives_state_and_reason() {
        let text = "JobId=7 JobName=x\n   JobState=CANCELLED Reason=None Dependency=(null)\n";
        let s = parse_scontrol(text).unwrap();
        assert_eq!((s.state.as_str(), s.reason.as_str()), ("CANCELLED", "None"));
        assert!(s.is_finished());
        assert_eq!(
            parse_scontrol("slurm_load_jobs error: Invalid job id"),
            None
        );
    }
}
