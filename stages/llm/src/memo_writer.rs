//! Answers into the memo, committed before they count as done.
//!
//! One blocking thread owns the writes: it takes every answer waiting, commits them in
//! one transaction (`Memo::put_many`) and only then tells each sender. At 256 requests
//! in flight this turns 256 commits into a few, and a request is never reported done
//! before its answer would survive a `kill -9`.

use pipeline::Digest;
use pipeline::StageError;
use pipeline::memo::Memo;
use tokio::sync::{mpsc, oneshot};

/// Records per transaction at most.
const GROUP: usize = 1024;

type Ack = oneshot::Sender<Result<(), String>>;

struct Put {
    records: Vec<(Digest, Vec<u8>)>,
    done: Ack,
}

/// A handle to the writer thread; clones share it.
#[derive(Clone)]
pub struct MemoWriter {
    tx: mpsc::UnboundedSender<Put>,
}

impl MemoWriter {
    /// Start the writer thread for `memo`; it ends when every handle is dropped (every
    /// record handed to it was committed before its sender heard back).
    pub fn start(memo: Memo) -> MemoWriter {
        let (tx, mut rx) = mpsc::unbounded_channel::<Put>();
        tokio::task::spawn_blocking(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut group = vec![first];
                while group.len() < GROUP
                    && let Ok(next) = rx.try_recv()
                {
                    group.push(next);
                }
                let result = memo
                    .put_many(
                        group
                            .iter()
                            .flat_map(|p| p.records.iter().map(|(k, v)| (k, v.as_slice()))),
                    )
                    .map_err(|e| e.to_string());
                for p in group {
                    let _ = p.done.send(result.clone());
                }
            }
        });
        MemoWriter { tx }
    }

    /// Store records; returns once they are committed.
    pub async fn put_many(&self, records: Vec<(Digest, Vec<u8>)>) -> Result<(), StageError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Put { records, done })
            .map_err(|_| StageError::msg("the memo writer has stopped"))?;
        wait.await
            .map_err(|_| StageError::msg("the memo writer has stopped"))?
            .map_err(|e| StageError::msg(format!("storing answers: {e}")))
    }

    pub async fn put(&self, key: Digest, value: Vec<u8>) -> Result<(), StageError> {
        self.put_many(vec![(key, value)]).await
    }
}
