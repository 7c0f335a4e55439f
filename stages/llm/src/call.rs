//! One request, online, until it has an answer in the memo or has failed for good.
//!
//! Every attempt passes the gate (which reserves its worst-case cost against the
//! budgets), is counted and charged (settling the reservation with the bill), and its
//! outcome goes back to the gate (breaker, learned limits, token corrections). Transient errors back off
//! (honouring `Retry-After`, which also pauses everyone) up to `limits.max_attempts`;
//! invalid answers are sent again up to `limits.max_invalid`; errors that cannot
//! succeed fail the row at once; fatal ones (wrong key, wrong model, no quota) stop
//! the stage from sending anything more. An answer counts as done only once the memo
//! has committed it.

use super::answer::{Answer, Spend, check};
use super::backoff::Rng;
use super::breaker::Change;
use super::client::{CallError, RAW_LIMIT};
use super::errors::{Disposition, ErrorClass, truncate};
use super::failure::Failure;
use super::gate::Finish;
use super::request::Request;
use super::session::Session;
use pipeline::budget::{Reservation, nano};
use pipeline::{Digest, StageError};

/// Send `request` (key `key`) until answered (`Ok(None)`) or failed.
pub async fn call(
    session: &Session,
    key: Digest,
    request: &Request,
) -> Result<Option<Failure>, StageError> {
    let key_bits = u64::from_le_bytes(key.as_bytes()[..8].try_into().expect("8 bytes"));
    let mut rng = Rng::new(session.ctx.seed ^ key_bits);
    let mut attempts = 0u32;
    let mut transient = 0u32;
    let mut invalid = 0u32;
    let mut spent = Spend::default();
    let mut last: Option<CallError> = None;
    // The most one attempt can be billed, reserved against the budgets before it goes.
    let worst = session
        .ledger
        .worst_case(request.input.worst, request.max_out.unwrap_or(0));
    loop {
        let mut ticket = match session
            .gate
            .acquire(request.input.expected, request.est_out, worst)
            .await
        {
            Ok(t) => t,
            Err(why) => {
                let message = match &last {
                    Some(e) => format!("not sent again ({why}); last attempt: {}", e.message),
                    None => format!("not sent: {why}"),
                };
                return Ok(Some(Failure {
                    class: ErrorClass::NotSent,
                    message,
                    raw: last.and_then(|e| e.raw),
                    attempts,
                    spend: spent,
                }));
            }
        };
        let reservation = ticket.reservation.take();
        attempts += 1;
        session.ledger.sending(attempts > 1);
        let result = session.client.chat(request.body.clone()).await;
        session.ledger.returned();
        let (healthy, headers, usage) = match &result {
            Ok(r) => (true, &r.headers, r.usage),
            Err(e) => (!e.class.is_unhealthy(), &*e.headers, None),
        };
        let change = session.gate.finish(
            ticket,
            Finish {
                healthy,
                headers,
                usage,
            },
        );
        // What the attempt was billed: the server's usage (without it, the input's
        // bound and the answer's bytes, which no token count exceeds).
        let billed = match &result {
            Ok(reply) => Some(session.ledger.charge_reply(reply, request)),
            Err(_) => None,
        };
        if let Some(r) = reservation {
            settle(session, r, billed.as_ref(), result.as_ref().err());
        }
        if let Some(change) = change {
            let last = result.as_ref().err().map_or("", |e| e.message.as_str());
            breaker_changed(session, change, last);
        }
        let error = match result {
            Ok(reply) => {
                let spend = billed.expect("charged above");
                spent += spend;
                match check(&reply, &session.expect) {
                    Ok(content) => {
                        let value = serde_json::to_vec(&Answer { content, spend })
                            .expect("answers serialise");
                        session.writer.put(key, value).await?;
                        session.ledger.answered();
                        return Ok(None);
                    }
                    Err((class, message)) => CallError {
                        class,
                        message,
                        raw: reply.content.as_deref().map(|c| truncate(c, RAW_LIMIT)),
                        headers: Box::new(reply.headers),
                    },
                }
            }
            Err(e) => e,
        };
        session.ledger.error(error.class);
        let give_up = match error.class.disposition() {
            Disposition::Retry => {
                transient += 1;
                transient >= session.limits.max_attempts
            }
            Disposition::Invalid => {
                invalid += 1;
                invalid >= session.limits.max_invalid
            }
            Disposition::Permanent => true,
            Disposition::Fatal => {
                session.gate.stop(format!(
                    "{} ({}); nothing else can succeed, so the stage stopped sending",
                    error.message,
                    error.class.as_str()
                ));
                true
            }
        };
        if give_up {
            let message = match error.class.disposition() {
                Disposition::Retry => format!("{} (after {attempts} attempts)", error.message),
                Disposition::Invalid => format!("{} ({invalid} invalid answers)", error.message),
                _ => error.message,
            };
            return Ok(Some(Failure {
                class: error.class,
                message,
                raw: error.raw,
                attempts,
                spend: spent,
            }));
        }
        if error.class.disposition() == Disposition::Retry {
            let retry_after = error.headers.retry_after;
            let delay = session.backoff.delay(transient, retry_after, &mut rng);
            if retry_after.is_some() {
                session.gate.pause(delay);
            }
            tokio::time::sleep(delay).await;
        }
        last = Some(error);
    }
}

/// Settle an attempt's reservation with its bill. An attempt that got no response may
/// still have been processed and billed (a timeout, a connection lost after sending):
/// its worst case counts as spent. A bill above the worst case means the bound does
/// not hold, and the stage stops sending.
fn settle(session: &Session, r: Reservation, billed: Option<&Spend>, error: Option<&CallError>) {
    let actual = match (billed, error) {
        (Some(spend), _) => nano(spend.cost_usd),
        (None, Some(e)) if matches!(e.class, ErrorClass::Timeout | ErrorClass::Connection) => {
            r.amount()
        }
        (None, _) => 0,
    };
    if let Err(over) = r.settle(actual) {
        session.overrun(over);
    }
}

fn breaker_changed(session: &Session, change: Change, last_error: &str) {
    match change {
        Change::Tripped { failed, of, pause } => {
            let why = if of == 0 {
                "the probe failed".to_string()
            } else {
                format!("{failed} of the last {of} attempts failed")
            };
            session.log(format!(
                "circuit breaker open: {why} (last: {last_error}); sending nothing for {:.1} s",
                pause.as_secs_f64()
            ))
        }
        Change::Closed => session.log("circuit breaker closed: the server answers again"),
        Change::GaveUp { trips } => session.gate.stop(format!(
            "the circuit breaker gave up after {trips} trips in a row (last error: {last_error})"
        )),
    }
}
