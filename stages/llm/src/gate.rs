//! The gate every attempt passes before it is sent: a global pause (`Retry-After`),
//! the token buckets (requests, tokens, input and output tokens per minute, from the
//! recipe and learned from headers), the budgets (the attempt's worst-case cost is
//! reserved against the node's cap and the run's, or it waits for attempts in flight
//! to settle), the circuit breaker, and the stop switch (no budget left, breaker gave
//! up, a fatal error such as a wrong key).
//!
//! Waiting costs nothing but a timer: a waiting attempt sleeps until the earliest time
//! the gate could open, or until a probe's outcome, a settled reservation or a stop
//! wakes it.

use super::breaker::{Admit, Breaker, Change};
use super::bucket::{TokenBucket, learn};
use super::config::LimitsConfig;
use super::headers::RateHeaders;
use pipeline::budget::{Admission, Budget, Reservation};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Permission to send one attempt; hand it back with [`Gate::finish`], after settling
/// its reservation (if the node has a budget) with the attempt's bill.
#[derive(Debug)]
pub struct Ticket {
    probe: bool,
    est_in: f64,
    est_out: f64,
    pub reservation: Option<Reservation>,
}

/// Why an attempt cannot go yet.
enum Hold {
    /// For this long.
    For(Duration),
    /// Until woken (a probe's outcome, a settled reservation, a stop).
    Woken,
    /// Never: stop sending, for this reason.
    Stop(String),
}

/// What became of an attempt.
pub struct Finish<'a> {
    /// False when it failed transiently (the breaker counts those).
    pub healthy: bool,
    pub headers: &'a RateHeaders,
    /// Input and output tokens the server reported.
    pub usage: Option<(u64, u64)>,
}

pub struct Gate {
    state: Mutex<State>,
    wake: Notify,
    /// The caps each attempt's worst case is reserved against: the node's own first,
    /// then the run's.
    budgets: Vec<Arc<Budget>>,
}

struct State {
    requests: Option<TokenBucket>,
    tokens: Option<TokenBucket>,
    input: Option<TokenBucket>,
    output: Option<TokenBucket>,
    learn: bool,
    breaker: Breaker,
    paused_until: Option<Instant>,
    stopped: Option<String>,
}

impl State {
    fn buckets(&mut self, est_in: f64, est_out: f64) -> [(Option<&mut TokenBucket>, f64); 4] {
        [
            (self.requests.as_mut(), 1.0),
            (self.tokens.as_mut(), est_in + est_out),
            (self.input.as_mut(), est_in),
            (self.output.as_mut(), est_out),
        ]
    }

    /// A ticket (holding `worst` nano-dollars against `budgets`), or why not yet.
    fn admit(
        &mut self,
        now: Instant,
        est_in: f64,
        est_out: f64,
        budgets: &[Arc<Budget>],
        worst: u64,
    ) -> Result<Ticket, Hold> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(Hold::For(until - now));
            }
            self.paused_until = None;
        }
        let wait = self
            .buckets(est_in, est_out)
            .into_iter()
            .filter_map(|(b, n)| b.map(|b| b.wait(n, now)))
            .max()
            .unwrap_or_default();
        if wait > Duration::ZERO {
            return Err(Hold::For(wait));
        }
        let reservation = if budgets.is_empty() {
            None
        } else {
            match Budget::reserve(budgets, worst) {
                Admission::Granted(r) => Some(r),
                Admission::Wait => return Err(Hold::Woken),
                Admission::Never(why) => return Err(Hold::Stop(why)),
            }
        };
        let probe = match self.breaker.admit(now) {
            Admit::Go { probe } => probe,
            other => {
                if let Some(r) = reservation {
                    r.cancel();
                }
                return Err(match other {
                    Admit::Wait(Some(wait)) => Hold::For(wait),
                    _ => Hold::Woken,
                });
            }
        };
        for (b, n) in self.buckets(est_in, est_out) {
            if let Some(b) = b {
                b.take(n);
            }
        }
        Ok(Ticket {
            probe,
            est_in,
            est_out,
            reservation,
        })
    }
}

impl Gate {
    /// A gate for `limits`, reserving each attempt's worst case against `budgets`
    /// (the node's own cap first, then the run's; none: no cap).
    pub fn new(limits: &LimitsConfig, budgets: Vec<Arc<Budget>>) -> Gate {
        let now = Instant::now();
        let bucket = |limit: Option<f64>| limit.map(|l| TokenBucket::per_minute(l, now));
        Gate {
            state: Mutex::new(State {
                requests: bucket(limits.rpm),
                tokens: bucket(limits.tpm),
                input: bucket(limits.input_tpm),
                output: bucket(limits.output_tpm),
                learn: limits.learn_from_headers,
                breaker: Breaker::new(limits.breaker.clone()),
                paused_until: None,
                stopped: None,
            }),
            wake: Notify::new(),
            budgets,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait until an attempt with these token estimates, whose bill is at most `worst`
    /// nano-dollars, may go; `Err(reason)` once the gate is stopped (or stops because
    /// the attempt can never fit the budget).
    pub async fn acquire(&self, est_in: u64, est_out: u64, worst: u64) -> Result<Ticket, String> {
        loop {
            // Registered before looking, so a wake-up between the look and the wait
            // is not lost.
            let woken = self.wake.notified();
            let freed = Budget::freed(&self.budgets);
            let hold = {
                let mut s = self.lock();
                if let Some(reason) = &s.stopped {
                    return Err(reason.clone());
                }
                match s.admit(
                    Instant::now(),
                    est_in as f64,
                    est_out as f64,
                    &self.budgets,
                    worst,
                ) {
                    Ok(ticket) => return Ok(ticket),
                    Err(hold) => hold,
                }
            };
            match hold {
                Hold::For(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = woken => {}
                        _ = freed => {}
                    }
                }
                Hold::Woken => {
                    tokio::select! {
                        _ = woken => {}
                        _ = freed => {}
                    }
                }
                Hold::Stop(why) => {
                    self.stop(why.clone());
                    return Err(why);
                }
            }
        }
    }

    /// Report an attempt's outcome: the breaker's verdict, limits learned from headers,
    /// token estimates corrected by the reported usage.
    pub fn finish(&self, ticket: Ticket, finish: Finish<'_>) -> Option<Change> {
        let now = Instant::now();
        let mut guard = self.lock();
        let s = &mut *guard;
        if s.learn {
            learn(&mut s.requests, &finish.headers.requests, now);
            learn(&mut s.tokens, &finish.headers.tokens, now);
        }
        if let Some((tin, tout)) = finish.usage {
            let (din, dout) = (tin as f64 - ticket.est_in, tout as f64 - ticket.est_out);
            for (b, n) in [
                (s.tokens.as_mut(), din + dout),
                (s.input.as_mut(), din),
                (s.output.as_mut(), dout),
            ] {
                if let Some(b) = b {
                    b.take(n);
                }
            }
        }
        let change = s.breaker.record(ticket.probe, finish.healthy, now);
        drop(guard);
        if ticket.probe {
            self.wake.notify_waiters();
        }
        change
    }

    /// Send nothing for `d` (a server's `Retry-After` applies to everyone).
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut s = self.lock();
        s.paused_until = Some(s.paused_until.map_or(until, |u| u.max(until)));
    }

    /// Stop sending, for good; the first reason given is kept.
    pub fn stop(&self, reason: String) {
        self.lock().stopped.get_or_insert(reason);
        self.wake.notify_waiters();
    }

    pub fn stopped(&self) -> Option<String> {
        self.lock().stopped.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::Announced;

    fn limits(rpm: Option<f64>) -> LimitsConfig {
        LimitsConfig {
            rpm,
            ..LimitsConfig::default()
        }
    }

    const NO_HEADERS: RateHeaders = RateHeaders {
        requests: Announced {
            limit: None,
            remaining: None,
            reset: None,
        },
        tokens: Announced {
            limit: None,
            remaining: None,
            reset: None,
        },
        retry_after: None,
    };

    fn ok() -> Finish<'static> {
        Finish {
            healthy: true,
            headers: &NO_HEADERS,
            usage: None,
        }
    }

    async fn pass(gate: &Gate, n: usize) -> f64 {
        let t0 = Instant::now();
        for _ in 0..n {
            let t = gate.acquire(10, 10, 0).await.unwrap();
            gate.finish(t, ok());
        }
        t0.elapsed().as_secs_f64()
    }

    #[tokio::test]
    async fn rpm_paces_attempts() {
        // 200/s, holding one second's worth: 200 at once, 40 more in 0.2 s.
        let gate = Gate::new(&limits(Some(12_000.0)), vec![]);
        let elapsed = pass(&gate, 240).await;
        assert!((0.15..0.5).contains(&elapsed), "{elapsed}");
    }

    #[tokio::test]
    async fn pause_and_stop() {
        let gate = Gate::new(&limits(None), vec![]);
        gate.pause(Duration::from_millis(200));
        let elapsed = pass(&gate, 1).await;
        assert!(elapsed >= 0.2, "{elapsed}");
        gate.stop("budget spent".into());
        gate.stop("later reason".into());
        assert_eq!(gate.acquire(1, 1, 0).await.unwrap_err(), "budget spent");
    }

    #[tokio::test]
    async fn a_learned_limit_paces_later_attempts() {
        let gate = Gate::new(&limits(None), vec![]);
        assert!(pass(&gate, 50).await < 0.1, "no limit, no waiting");
        let headers = RateHeaders {
            requests: Announced {
                limit: Some(600.0),
                remaining: Some(599.0),
                reset: None,
            },
            ..RateHeaders::default()
        };
        let t = gate.acquire(1, 1, 0).await.unwrap();
        gate.finish(
            t,
            Finish {
                healthy: true,
                headers: &headers,
                usage: Some((1, 1)),
            },
        );
        // 10/s holding 10: ten at once, two more in 0.2 s.
        let elapsed = pass(&gate, 12).await;
        assert!((0.15..0.5).contains(&elapsed), "{elapsed}");
    }
}
