//! Following a remote node's event file (`exec-node` appends to it and shares it as a
//! run file, on S3 through the bucket): new complete lines
//! are merged into the run's event log, and its progress drives the controller's
//! display. Progress lines are not copied: the controller's own ticker writes them.

use crate::events::{Event, EventRecord};
use crate::executor::node::RunEnv;
use crate::progress::Progress;
use crate::store::Store;

/// How the remote process ended the node, as its events say.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Finish {
    Ran { unchanged: bool },
    Cached,
}

pub struct Follow {
    run_id: String,
    /// The run file followed.
    name: String,
    offset: u64,
    partial: Vec<u8>,
    progress: Option<Progress>,
    /// How the node ended, from the lines read since the last [`Self::restart`].
    pub finish: Option<Finish>,
}

impl Follow {
    /// Follow the run file `name` of run `run_id` from its current end (earlier runs'
    /// lines are not this run's).
    pub fn new(store: &Store, run_id: &str, name: String) -> Follow {
        let offset = shared(store, run_id, &name).map_or(0, |b| b.len() as u64);
        Follow {
            run_id: run_id.to_string(),
            name,
            offset,
            partial: Vec::new(),
            progress: None,
            finish: None,
        }
    }

    /// Forget how the last attempt ended (a new job is submitted).
    pub fn restart(&mut self) {
        self.finish = None;
        self.partial.clear();
    }

    /// Read what was appended and pass it on.
    pub fn pump(&mut self, env: &RunEnv, node: &str) {
        let Some(all) = shared(&env.store, &self.run_id, &self.name) else {
            return;
        };
        let Some(new) = all.get(self.offset as usize..) else {
            return;
        };
        self.offset += new.len() as u64;
        self.partial.extend_from_slice(new);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<EventRecord>(line) {
                Ok(record) => self.pass_on(env, node, record),
                Err(e) => env.events.emit(Event::Message {
                    node: node.to_string(),
                    level: "warn".into(),
                    text: format!("unreadable line in {}: {e}", self.name),
                }),
            }
        }
    }

    fn pass_on(&mut self, env: &RunEnv, node: &str, record: EventRecord) {
        match &record.event {
            Event::NodeProgress {
                done, total, unit, ..
            } => {
                if let Some(p) = &self.progress {
                    p.set_total(total.unwrap_or(0), unit);
                    p.set_done(*done);
                }
                return;
            }
            Event::NodeStarted { .. } => {
                let p = Progress::default();
                env.set_active(node, Some(p.clone()));
                self.progress = Some(p);
            }
            Event::NodeFinished { unchanged, .. } => {
                self.finish = Some(Finish::Ran {
                    unchanged: *unchanged,
                });
            }
            Event::NodeCached { .. } => self.finish = Some(Finish::Cached),
            _ => {}
        }
        if matches!(
            record.event,
            Event::NodeFinished { .. } | Event::NodeCached { .. }
        ) {
            self.stop_progress(env, node);
        }
        env.events.forward(record);
    }

    /// The node is no longer running here (its job ended).
    pub fn stop_progress(&mut self, env: &RunEnv, node: &str) {
        if self.progress.take().is_some() {
            env.set_active(node, None);
        }
    }
}

/// What was shared of the run file so far (nothing yet, or unreadable now: try later).
fn shared(store: &Store, run_id: &str, name: &str) -> Option<Vec<u8>> {
    store.get_run_file(run_id, name).ok().flatten()
}
