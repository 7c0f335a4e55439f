//! Following a remote node's event file (`exec-node` appends to it): new complete lines
//! are merged into the run's event log, and its progress drives the controller's
//! display. Progress lines are not copied: the controller's own ticker writes them.

use crate::events::{Event, EventRecord};
use crate::executor::node::RunEnv;
use crate::progress::Progress;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// How the remote process ended the node, as its events say.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Finish {
    Ran { unchanged: bool },
    Cached,
}

pub struct Follow {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    progress: Option<Progress>,
    /// How the node ended, from the lines read since the last [`Self::restart`].
    pub finish: Option<Finish>,
}

impl Follow {
    /// Follow `path` from its current end (earlier runs' lines are not this run's).
    pub fn new(path: PathBuf) -> Follow {
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        Follow {
            path,
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
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        let mut new = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut new).is_err() {
            return;
        }
        self.offset += new.len() as u64;
        self.partial.extend_from_slice(&new);
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
                    text: format!("unreadable line in {}: {e}", self.path.display()),
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
