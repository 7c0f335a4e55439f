//! Token buckets for requests and tokens per minute.
//!
//! A bucket holds at most one second of its rate (a one-per-minute limit still holds a
//! whole request), so that 256 idle slots do not fire a minute's quota at once: servers
//! enforce per-minute limits over shorter windows too. A request waits until the bucket
//! holds what it needs, or is full when it needs more than the bucket can hold; taking
//! may leave the bucket in debt, which later requests wait out. Input tokens are
//! estimated before sending and corrected from the answer's `usage`.

use super::headers::Announced;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct TokenBucket {
    per_sec: f64,
    capacity: f64,
    level: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `limit` units per minute.
    pub fn per_minute(limit: f64, now: Instant) -> TokenBucket {
        let per_sec = limit / 60.0;
        let capacity = per_sec.max(1.0);
        TokenBucket {
            per_sec,
            capacity,
            level: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// How long until `n` units may be taken (zero: now).
    pub fn wait(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        let need = n.min(self.capacity);
        if self.level >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.level) / self.per_sec)
        }
    }

    /// Take `n` units (negative: give back), possibly into debt.
    pub fn take(&mut self, n: f64) {
        self.level = (self.level - n).min(self.capacity);
    }

    pub fn limit_per_minute(&self) -> f64 {
        self.per_sec * 60.0
    }

    /// Lower the rate to `limit` per minute (never raise it).
    fn lower_limit(&mut self, limit: f64, now: Instant) {
        if limit < self.limit_per_minute() {
            self.refill(now);
            *self = TokenBucket {
                level: self.level.min(limit / 60.0),
                ..TokenBucket::per_minute(limit, now)
            };
        }
    }

    /// The server's count of what is left: never hold more than that; when nothing is
    /// left, owe until the announced reset.
    fn clamp_to(&mut self, remaining: f64, reset: Option<Duration>, now: Instant) {
        self.refill(now);
        self.level = self.level.min(remaining);
        if remaining < 1.0
            && let Some(reset) = reset
        {
            self.level = self.level.min(-reset.as_secs_f64() * self.per_sec);
        }
    }
}

/// Learn a limit from what a server announced: adopt it when there was none, lower
/// the configured one when the server's is lower, and follow `remaining`.
pub fn learn(bucket: &mut Option<TokenBucket>, announced: &Announced, now: Instant) {
    if let Some(limit) = announced.limit.filter(|l| l.is_finite() && *l > 0.0) {
        match bucket {
            Some(b) => b.lower_limit(limit, now),
            None => *bucket = Some(TokenBucket::per_minute(limit, now)),
        }
    }
    if let (Some(b), Some(remaining)) = (bucket.as_mut(), announced.remaining) {
        b.clamp_to(remaining, announced.reset, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_paces_to_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(600.0, t0); // 10/s, holds 10
        for _ in 0..10 {
            assert_eq!(b.wait(1.0, t0), Duration::ZERO);
            b.take(1.0);
        }
        let w = b.wait(1.0, t0);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
        assert_eq!(b.wait(1.0, t0 + Duration::from_millis(100)), Duration::ZERO);
    }

    #[test]
    fn big_requests_wait_for_a_full_bucket_then_leave_debt() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(6000.0, t0); // 100 tokens/s, holds 100
        assert_eq!(b.wait(500.0, t0), Duration::ZERO);
        b.take(500.0); // level -400
        let w = b.wait(500.0, t0);
        assert!((w.as_secs_f64() - 5.0).abs() < 1e-9, "{w:?}");
        // Usage smaller than estimated gives tokens back.
        b.take(-450.0);
        assert_eq!(b.wait(1.0, t0), Duration::ZERO);
    }

    #[test]
    fn learning_from_headers() {
        let t0 = Instant::now();
        let mut none: Option<TokenBucket> = None;
        learn(&mut none, &Announced::default(), t0);
        assert!(none.is_none(), "no headers, no bucket");
        let announced = Announced {
            limit: Some(120.0),
            remaining: Some(119.0),
            reset: Some(Duration::from_millis(500)),
        };
        learn(&mut none, &announced, t0);
        assert_eq!(none.as_ref().unwrap().limit_per_minute(), 120.0);
        // A configured limit is lowered, never raised.
        let mut configured = Some(TokenBucket::per_minute(60.0, t0));
        learn(&mut configured, &announced, t0);
        assert_eq!(configured.as_ref().unwrap().limit_per_minute(), 60.0);
        // Nothing remaining: wait for the reset.
        let exhausted = Announced {
            limit: None,
            remaining: Some(0.0),
            reset: Some(Duration::from_secs(3)),
        };
        let mut b = Some(TokenBucket::per_minute(600.0, t0));
        learn(&mut b, &exhausted, t0);
        let w = b.as_mut().unwrap().wait(1.0, t0);
        assert!(w >= Duration::from_secs(3), "{w:?}");
    }
}
