//! Reading a finished batch: its output and error files, line by line, into answers
//! (validated like online answers, then committed to the memo) and problems by request
//! key; and its input file, for the requests to send again.

use super::api::{Api, BatchObject};
use crate::answer::{Answer, Spend, check};
use crate::client::{CallError, RAW_LIMIT, parse_completion, status_error};
use crate::errors::{ErrorClass, truncate};
use crate::headers::RateHeaders;
use crate::session::Session;
use pipeline::budget::nano;
use pipeline::{Digest, StageError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Answers committed per memo transaction.
const CHUNK: usize = 1000;

#[derive(Deserialize)]
struct OutputLine {
    custom_id: String,
    #[serde(default)]
    response: Option<ResponsePart>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ResponsePart {
    status_code: u16,
    #[serde(default)]
    body: Value,
}

#[derive(Deserialize)]
struct InputLine {
    custom_id: String,
    body: Value,
}

/// What a finished batch gave.
#[derive(Default)]
pub struct Outcomes {
    pub answered: HashSet<Digest>,
    pub problems: HashMap<Digest, CallError>,
    /// What each answered request was billed, in nano-dollars (`None`: the server
    /// reported no usage, so the bill is unknown).
    pub billed: HashMap<Digest, Option<u64>>,
}

fn lines(path: &Path) -> Result<impl Iterator<Item = Result<String, StageError>>, StageError> {
    let at = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| StageError::from(e).context(&at))?;
    Ok(BufReader::new(file)
        .lines()
        .map(move |l| l.map_err(|e| StageError::from(e).context(&at))))
}

/// Download and read the output and error files of `batch`.
pub async fn read_results(
    api: &Api<'_>,
    session: &Session,
    batch: &BatchObject,
    scratch: &Path,
) -> Result<Outcomes, StageError> {
    let mut out = Outcomes::default();
    let mut answers: Vec<(Digest, Vec<u8>)> = Vec::new();
    for file in [&batch.output_file_id, &batch.error_file_id]
        .into_iter()
        .flatten()
    {
        let path = scratch.join(format!("{file}.jsonl"));
        api.download(file, &path).await?;
        for line in lines(&path)? {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: OutputLine = serde_json::from_str(&line).map_err(|e| {
                StageError::msg(format!("batch {}: output line is not valid: {e}", batch.id))
            })?;
            let key: Digest = parsed
                .custom_id
                .parse()
                .map_err(|e| StageError::msg(format!("batch {}: custom_id: {e}", batch.id)))?;
            let (spend, result) = result_of(session, parsed);
            if let Some(bill) = spend {
                let total = out.billed.entry(key).or_insert(Some(0));
                *total = total
                    .filter(|_| bill.reported)
                    .map(|t| t + nano(bill.spend.cost_usd));
            }
            match result {
                Ok(answer) => {
                    out.answered.insert(key);
                    out.problems.remove(&key);
                    answers.push((key, serde_json::to_vec(&answer).expect("answers serialise")));
                    if answers.len() >= CHUNK {
                        session
                            .writer
                            .put_many(std::mem::take(&mut answers))
                            .await?;
                    }
                }
                Err(problem) => {
                    session.ledger.error(problem.class);
                    if !out.answered.contains(&key) {
                        out.problems.insert(key, problem);
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    if !answers.is_empty() {
        session.writer.put_many(answers).await?;
    }
    Ok(out)
}

/// What a reply was billed (charged to the ledger), and whether the server reported
/// its usage (without it the bill is unknown and charged as zero).
#[derive(Clone, Copy)]
struct Bill {
    spend: Spend,
    reported: bool,
}

/// What one output line was billed, if it got a reply, and its answer or why there is
/// none.
fn result_of(session: &Session, line: OutputLine) -> (Option<Bill>, Result<Answer, CallError>) {
    let no_headers = RateHeaders::default();
    let Some(response) = line.response else {
        let code = line
            .error
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str);
        let message = line
            .error
            .as_ref()
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("no response");
        let class = if code == Some("batch_expired") {
            ErrorClass::Timeout
        } else {
            ErrorClass::Server
        };
        let error = CallError {
            class,
            message: format!("batch: {message}"),
            raw: line.error.map(|e| truncate(&e.to_string(), RAW_LIMIT)),
            headers: Box::new(no_headers),
        };
        return (None, Err(error));
    };
    let body = serde_json::to_vec(&response.body).expect("JSON serialises");
    if !(200..300).contains(&response.status_code) {
        return (
            None,
            Err(status_error(response.status_code, &body, no_headers)),
        );
    }
    let reply = match parse_completion(&body, no_headers) {
        Ok(reply) => reply,
        Err(e) => return (None, Err(e)),
    };
    let (tin, tout) = reply.usage.unwrap_or_default();
    let bill = Bill {
        spend: session.ledger.charge(tin, tout),
        reported: reply.usage.is_some(),
    };
    let result = match check(&reply, &session.expect) {
        Ok(content) => Ok(Answer {
            content,
            spend: bill.spend,
        }),
        Err((class, message)) => Err(CallError {
            class,
            message,
            raw: reply.content.as_deref().map(|c| truncate(c, RAW_LIMIT)),
            headers: Box::new(reply.headers),
        }),
    };
    (Some(bill), result)
}

/// The requests of a batch's input file: `(key, body)` per line.
pub fn input_requests(
    path: &Path,
) -> Result<impl Iterator<Item = Result<(Digest, Vec<u8>), StageError>>, StageError> {
    let at = path.display().to_string();
    Ok(lines(path)?.filter_map(move |line| {
        let line = match line {
            Ok(l) if l.trim().is_empty() => return None,
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        Some(
            serde_json::from_str::<InputLine>(&line)
                .map_err(|e| StageError::msg(format!("{at}: batch input line: {e}")))
                .and_then(|l| {
                    let key = l
                        .custom_id
                        .parse::<Digest>()
                        .map_err(|e| StageError::msg(format!("{at}: custom_id: {e}")))?;
                    Ok((key, serde_json::to_vec(&l.body).expect("JSON serialises")))
                }),
        )
    }))
}
