//! The online executor: requests are created as slots free up, never ahead of them.
//!
//! One loop takes jobs from the reader only while fewer than `limits.concurrency`
//! requests are in flight, so memory holds at most `concurrency` requests plus the
//! reader's channel. Each job is resolved by the memo (answered before), by a request
//! with the same key already in flight or failed (a duplicate row), or by a new request
//! task. Answers land in the memo; failures are collected by key for the assembly.

use super::call::call;
use super::errors::ErrorClass;
use super::failure::{Collected, Failure, Job};
use super::session::Session;
use pipeline::{Digest, StageError};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

type Done = (Digest, Result<Option<Failure>, StageError>);

/// Resolve every job: answers into the memo, failures into the result.
pub async fn collect(
    session: Arc<Session>,
    mut jobs: mpsc::Receiver<Job>,
) -> Result<Collected, StageError> {
    let concurrency = session.limits.concurrency as usize;
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut in_flight: HashSet<Digest> = HashSet::with_capacity(concurrency);
    let mut collected = Collected::default();
    let mut open = true;
    loop {
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let (key, result) =
                    done.map_err(|e| StageError::msg(format!("a request task ended abnormally: {e}")))?;
                in_flight.remove(&key);
                if let Some(failure) = result? {
                    session.ledger.failed();
                    collected.failures.insert(key, failure);
                }
                session.resolved();
            }
            job = jobs.recv(), if open && tasks.len() < concurrency => match job {
                None => open = false,
                Some(job) => {
                    let Job { key, request } = job;
                    let request = match request {
                        Ok(r) => r,
                        Err(why) => {
                            session.ledger.failed();
                            collected.failures.insert(key, Failure::new(ErrorClass::BadInput, why));
                            session.resolved();
                            continue;
                        }
                    };
                    if in_flight.contains(&key) || collected.failures.contains_key(&key) {
                        session.ledger.duplicate();
                    } else if session.lookup(&key)?.is_some() {
                        session.ledger.hit();
                    } else if session.gate.stopped().is_some() {
                        session.ledger.failed();
                    } else {
                        in_flight.insert(key);
                        let session = session.clone();
                        tasks.spawn(async move {
                            let result = call(&session, key, &request).await;
                            (key, result)
                        });
                        continue;
                    }
                    session.resolved();
                }
            },
            else => break,
        }
    }
    collected.stop = session.gate.stopped();
    Ok(collected)
}
