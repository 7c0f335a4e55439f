//! Exponential backoff with jitter, and the small seeded generator behind the jitter.
//!
//! After the n-th transient failure a request waits a random time in
//! `[d/2, d]`, `d = min(initial · 2ⁿ⁻¹, max)` ("equal jitter": never zero, never in
//! step with the other requests). A server's `Retry-After` replaces the computed delay
//! (plus up to 10% jitter, capped at `max_retry_after_secs`). The generator is seeded
//! from the node's seed and the request key, so a run's delays are reproducible.

use super::config::LimitsConfig;
use std::time::Duration;

pub use datasets::rng::Rng;

#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    initial: f64,
    max: f64,
    max_retry_after: f64,
}

impl Backoff {
    pub fn new(limits: &LimitsConfig) -> Backoff {
        Backoff {
            initial: limits.backoff_initial_secs,
            max: limits.backoff_max_secs,
            max_retry_after: limits.max_retry_after_secs,
        }
    }

    /// The wait after the `failures`-th transient failure of a request (1-based).
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, rng: &mut Rng) -> Duration {
        let secs = match retry_after {
            Some(ra) => (ra.as_secs_f64() * (1.0 + 0.1 * rng.unit())).min(self.max_retry_after),
            None => {
                let exp = failures.saturating_sub(1).min(60) as i32;
                let cap = (self.initial * 2f64.powi(exp)).min(self.max);
                cap * (0.5 + 0.5 * rng.unit())
            }
        };
        Duration::from_secs_f64(secs.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            initial: 1.0,
            max: 8.0,
            max_retry_after: 30.0,
        }
    }

    #[test]
    fn delays_double_within_jitter_and_cap() {
        let b = backoff();
        let mut rng = Rng::new(7);
        for (n, cap) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)] {
            for _ in 0..50 {
                let d = b.delay(n, None, &mut rng).as_secs_f64();
                assert!(d >= cap / 2.0 && d <= cap, "attempt {n}: {d}");
            }
        }
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let b = backoff();
        let mut rng = Rng::new(1);
        let d = b.delay(1, Some(Duration::from_secs(5)), &mut rng);
        assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs_f64(5.5));
        let d = b.delay(1, Some(Duration::from_secs(3600)), &mut rng);
        assert_eq!(d, Duration::from_secs(30));
    }

    #[test]
    fn the_generator_is_seeded() {
        let a: Vec<u64> = (0..3).map(|_| Rng::new(5).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut r = Rng::new(5);
        assert_ne!(r.next_u64(), r.next_u64());
        assert!((0..1000).map(|_| r.unit()).all(|u| (0.0..1.0).contains(&u)));
    }
}
