//! The batch executor: the same stage through the OpenAI Batch API.
//!
//! Requests the memo cannot answer are written into batch files (up to
//! `batch.max_requests` requests and `batch.max_bytes` bytes each), uploaded and
//! submitted; the moment a batch exists, the memo records, for each of its requests,
//! the batch id (namespace `llm.batch`). A restarted run finds those records and polls
//! the batches it already paid for instead of submitting again; a batch the server no
//! longer knows is submitted anew. Finished batches are read line by line: answers are
//! validated as online answers are and committed to the memo; requests that expired,
//! failed transiently or answered invalidly go into the next batch file, up to
//! `batch.max_rounds` submissions each; the rest become failures.
//!
//! A batch file holds only the requests whose worst cases the budgets admit: each is
//! reserved before submission and settled with its bill when the batch ends; requests
//! that must wait for room stay queued (reading the input waits with them), and once
//! one can never fit, sending stops. Requests of a batch an earlier run submitted are
//! already paid for: their worst cases are counted against the caps first. A crash
//! between creating a batch and recording it (a few milliseconds) would submit that
//! batch again on restart.

pub mod api;
mod results;
mod spool;

use super::config::BatchConfig;
use super::errors::{Disposition, ErrorClass};
use super::failure::{Collected, Failure, Job};
use super::session::Session;
use api::{Api, BatchObject};
use pipeline::budget::{Admission, Budget, Reservation};
use pipeline::memo::Memo;
use pipeline::{Digest, StageError};
use serde::{Deserialize, Serialize};
use spool::Spool;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Memo namespace of submitted requests: request key → batch id.
pub const PENDING_NAMESPACE: &str = "llm.batch";

#[derive(Serialize, Deserialize)]
struct Pending {
    batch: String,
}

/// A batch being waited for.
struct Open {
    /// Its input file, if this run wrote it (else it is downloaded when needed).
    input: Option<PathBuf>,
    /// The requests this run needs from it; `None`: all (this run submitted it).
    wanted: Option<HashSet<Digest>>,
    status: String,
    /// The worst cases held for its requests, settled when it ends.
    held: HashMap<Digest, Reservation>,
}

struct Run<'a> {
    session: &'a Session,
    api: Api<'a>,
    config: &'a BatchConfig,
    scratch: &'a Path,
    pending: Memo,
    open: BTreeMap<String, Open>,
    /// Batches recorded in the memo that the server no longer knows.
    gone: HashSet<String>,
    spool: Spool,
    /// Submissions so far of requests submitted more than once.
    submissions: HashMap<Digest, u32>,
    /// The worst-case cost (nano-dollars) of each request not yet resolved.
    worst: HashMap<Digest, u64>,
    files: u32,
    collected: Collected,
}

/// Resolve every job through the Batch API.
pub async fn collect(
    session: Arc<Session>,
    mut jobs: mpsc::Receiver<Job>,
    config: &BatchConfig,
    scratch: &Path,
) -> Result<Collected, StageError> {
    let mut run = Run {
        session: &session,
        api: Api::new(
            &session.client,
            session.backoff,
            session.limits.max_attempts,
        ),
        config,
        scratch,
        pending: session.ctx.memo_uncounted(PENDING_NAMESPACE)?,
        open: BTreeMap::new(),
        gone: HashSet::new(),
        spool: Spool::new(&config.endpoint),
        submissions: HashMap::new(),
        worst: HashMap::new(),
        files: 0,
        collected: Collected::default(),
    };
    while let Some(job) = jobs.recv().await {
        run.admit(job).await?;
    }
    run.wait().await?;
    run.collected.stop = session.gate.stopped();
    Ok(run.collected)
}

impl Run<'_> {
    fn resolved(&self) {
        self.session.resolved();
    }

    fn fail(&mut self, key: Digest, failure: Failure) {
        self.session.ledger.failed();
        self.collected.failures.insert(key, failure);
        self.resolved();
    }

    async fn admit(&mut self, job: Job) -> Result<(), StageError> {
        let key = job.key;
        let request = match job.request {
            Ok(r) => r,
            Err(why) => {
                self.fail(key, Failure::new(ErrorClass::BadInput, why));
                return Ok(());
            }
        };
        if self.collected.failures.contains_key(&key) || self.spool.contains(&key) {
            self.session.ledger.duplicate();
            self.resolved();
            return Ok(());
        }
        if self.session.lookup(&key)?.is_some() {
            self.session.ledger.hit();
            self.resolved();
            return Ok(());
        }
        let worst = self
            .session
            .ledger
            .worst_case(request.input.worst, request.max_out.unwrap_or(0));
        self.worst.insert(key, worst);
        if let Some(p) = self.pending.get_json::<Pending>(&key)?
            && !self.gone.contains(&p.batch)
        {
            match self.open.get_mut(&p.batch) {
                Some(open) => match &mut open.wanted {
                    Some(wanted) => {
                        wanted.insert(key);
                        open.held
                            .insert(key, Budget::commit(&self.session.budgets, worst));
                    }
                    None => {
                        self.session.ledger.duplicate();
                        self.resolved();
                    }
                },
                None => match self.api.get(&p.batch).await? {
                    Some(batch) => {
                        self.session.log(format!(
                            "resuming batch {} ({}), submitted by an earlier run",
                            batch.id, batch.status
                        ));
                        self.open.insert(
                            batch.id,
                            Open {
                                input: None,
                                wanted: Some(HashSet::from([key])),
                                status: batch.status,
                                held: HashMap::from([(
                                    key,
                                    Budget::commit(&self.session.budgets, worst),
                                )]),
                            },
                        );
                    }
                    None => {
                        self.session.log(format!(
                            "batch {} recorded by an earlier run is unknown to the server: its requests are submitted again",
                            p.batch
                        ));
                        self.gone.insert(p.batch);
                        self.add(key, &request.body).await?;
                    }
                },
            }
            return Ok(());
        }
        self.add(key, &request.body).await
    }

    /// Queue a request; once a file's worth is queued, submit what the budgets admit,
    /// waiting for open batches to end while they admit nothing.
    async fn add(&mut self, key: Digest, body: &[u8]) -> Result<(), StageError> {
        let worst = self.worst.get(&key).copied().unwrap_or(0);
        self.spool.push(key, body, worst)?;
        let (max_requests, max_bytes) = (self.config.max_requests as usize, self.config.max_bytes);
        while self.spool.is_full(max_requests, max_bytes) {
            if !self.submit().await? {
                if self.spool.is_empty() {
                    break;
                }
                self.poll().await?;
            }
        }
        Ok(())
    }

    /// Upload and submit a file cut from the front of the queue, with the requests the
    /// budgets admit, and record them. False when nothing could be submitted (the queue
    /// is empty, must wait for room, or sending stopped, which empties it).
    async fn submit(&mut self) -> Result<bool, StageError> {
        let budgets = &self.session.budgets;
        let mut held = HashMap::new();
        let mut never = None;
        let file = if self.session.gate.stopped().is_some() {
            None
        } else {
            self.spool.cut(
                self.config.max_requests as usize,
                self.config.max_bytes,
                |line| {
                    if budgets.is_empty() {
                        return true;
                    }
                    match Budget::reserve(budgets, line.worst) {
                        Admission::Granted(r) => {
                            held.insert(line.key, r);
                            true
                        }
                        Admission::Wait => false,
                        Admission::Never(why) => {
                            never = Some(why);
                            false
                        }
                    }
                },
            )
        };
        if let Some(why) = never {
            self.session.gate.stop(why);
        }
        let Some(file) = file else {
            if self.session.gate.stopped().is_some() {
                self.spool.clear();
            }
            return Ok(false);
        };
        self.files += 1;
        let name = format!("batch-{:04}.jsonl", self.files);
        let path = self.scratch.join(&name);
        std::fs::write(&path, &file.content)
            .map_err(|e| StageError::from(e).context(path.display()))?;
        let uploaded = self.api.upload(&name, &file.content).await?;
        let batch = self
            .api
            .create(
                &uploaded,
                &self.config.endpoint,
                &self.config.completion_window,
            )
            .await?;
        let record = serde_json::to_vec(&Pending {
            batch: batch.id.clone(),
        })
        .expect("records serialise");
        self.pending
            .put_many(file.lines.iter().map(|l| (&l.key, record.as_slice())))?;
        for l in &file.lines {
            self.session
                .ledger
                .sending(self.submissions.contains_key(&l.key));
        }
        self.session.log(format!(
            "submitted batch {} ({} requests, {} bytes, file {uploaded})",
            batch.id,
            file.lines.len(),
            file.content.len()
        ));
        self.open.insert(
            batch.id,
            Open {
                input: Some(path),
                wanted: None,
                status: batch.status,
                held,
            },
        );
        Ok(true)
    }

    /// Submit and poll until every batch has ended and nothing is left to submit.
    async fn wait(&mut self) -> Result<(), StageError> {
        loop {
            while self.submit().await? {}
            if self.open.is_empty() && self.spool.is_empty() {
                return Ok(());
            }
            self.poll().await?;
        }
    }

    /// Wait one polling interval, then read every open batch that has ended.
    async fn poll(&mut self) -> Result<(), StageError> {
        tokio::time::sleep(Duration::from_secs_f64(self.config.poll_secs)).await;
        let ids: Vec<String> = self.open.keys().cloned().collect();
        for id in ids {
            let batch = self.api.get(&id).await?.ok_or_else(|| {
                StageError::msg(format!(
                    "batch {id} disappeared from the server while running"
                ))
            })?;
            let open = self.open.get_mut(&id).expect("listed above");
            if open.status != batch.status {
                self.session.log(format!(
                    "batch {id}: {}{}",
                    batch.status,
                    batch
                        .request_counts
                        .as_ref()
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default()
                ));
                open.status = batch.status.clone();
            }
            if batch.is_finished() {
                let open = self.open.remove(&id).expect("listed above");
                self.finish(&batch, open).await?;
            }
        }
        Ok(())
    }

    /// Read a finished batch: answers in, problems retried or failed.
    async fn finish(&mut self, batch: &BatchObject, mut open: Open) -> Result<(), StageError> {
        if let Some(errors) = &batch.errors {
            self.session.log(format!(
                "batch {} ended {}: {errors}",
                batch.id, batch.status
            ));
        }
        let mut outcomes =
            results::read_results(&self.api, self.session, batch, self.scratch).await?;
        for (key, reservation) in open.held.drain() {
            // No line: not billed; a line without usage: billed, at most the worst case.
            let actual = match outcomes.billed.get(&key) {
                None => 0,
                Some(bill) => bill.unwrap_or(reservation.amount()),
            };
            if let Err(over) = reservation.settle(actual) {
                self.session.overrun(over);
            }
        }
        let input = match open.input {
            Some(path) => path,
            None => {
                let path = self.scratch.join(format!("{}.jsonl", batch.input_file_id));
                self.api.download(&batch.input_file_id, &path).await?;
                path
            }
        };
        for request in results::input_requests(&input)? {
            let (key, body) = request?;
            match &mut open.wanted {
                Some(wanted) => {
                    if !wanted.remove(&key) {
                        continue;
                    }
                }
                None => self.session.ledger.returned(),
            }
            if outcomes.answered.contains(&key) {
                self.session.ledger.answered();
                self.resolved();
                continue;
            }
            let problem = outcomes.problems.remove(&key);
            let (class, message, raw) = match problem {
                Some(p) => (p.class, p.message, p.raw),
                None => (
                    if batch.status == "expired" {
                        ErrorClass::Timeout
                    } else {
                        ErrorClass::Server
                    },
                    format!(
                        "batch {} ended {} without a result for this request",
                        batch.id, batch.status
                    ),
                    None,
                ),
            };
            let submitted = self.submissions.get(&key).copied().unwrap_or(1);
            let again = matches!(
                class.disposition(),
                Disposition::Retry | Disposition::Invalid
            ) && submitted < self.config.max_rounds;
            if class.disposition() == Disposition::Fatal {
                self.session
                    .gate
                    .stop(format!("{message}; the stage stopped submitting"));
            }
            if again && self.session.gate.stopped().is_none() {
                self.submissions.insert(key, submitted + 1);
                let worst = self.worst.get(&key).copied().unwrap_or(0);
                self.spool.push(key, &body, worst)?;
            } else {
                self.fail(
                    key,
                    Failure {
                        class,
                        message: format!("{message} (after {submitted} submissions)"),
                        raw,
                        attempts: submitted,
                        spend: Default::default(),
                    },
                );
            }
        }
        for key in open.wanted.into_iter().flatten() {
            let message = format!("batch {} has no request {}", batch.id, key.short());
            self.fail(key, Failure::new(ErrorClass::Server, message));
        }
        let _ = std::fs::remove_file(&input);
        self.session.ledger.publish(&self.session.ctx);
        Ok(())
    }
}
