//! The circuit breaker: stop hammering a server whose error rate spiked.
//!
//! Closed, it watches the last `window` attempts; when at least `error_rate` of them
//! failed with transient errors (429, 5xx, timeouts, dropped connections) it opens:
//! nothing is sent for a pause that doubles with each trip in a row (up to
//! `max_pause_secs`). Then it lets one probe through (half-open): an answer closes it,
//! a failure opens it again. After `max_trips` trips without an answer in between, it
//! gives up, and the stage stops sending and says why.

use super::config::BreakerConfig;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    /// Half-open: one probe is out.
    Probing,
    GaveUp,
}

/// May an attempt go now?
#[derive(Debug, PartialEq)]
pub enum Admit {
    Go {
        probe: bool,
    },
    /// Wait this long (or until a probe finishes, when `None`).
    Wait(Option<Duration>),
    GaveUp,
}

/// What changed with an outcome, for the log.
#[derive(Debug, PartialEq)]
pub enum Change {
    Tripped {
        failed: usize,
        of: usize,
        pause: Duration,
    },
    Closed,
    GaveUp {
        trips: u32,
    },
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    recent: VecDeque<bool>,
    failed: usize,
    trips: u32,
    state: State,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            recent: VecDeque::with_capacity(config.window as usize),
            config,
            failed: 0,
            trips: 0,
            state: State::Closed,
        }
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            State::Closed => Admit::Go { probe: false },
            State::Open { until } if now < until => Admit::Wait(Some(until - now)),
            State::Open { .. } => {
                self.state = State::Probing;
                Admit::Go { probe: true }
            }
            State::Probing => Admit::Wait(None),
            State::GaveUp => Admit::GaveUp,
        }
    }

    /// Record an attempt's outcome: `healthy` unless it failed transiently.
    pub fn record(&mut self, probe: bool, healthy: bool, now: Instant) -> Option<Change> {
        if probe {
            return if healthy {
                self.close();
                Some(Change::Closed)
            } else {
                Some(self.trip(0, 0, now))
            };
        }
        // Attempts sent before a trip report while it is open: the window restarts.
        if !matches!(self.state, State::Closed) {
            return None;
        }
        self.recent.push_back(!healthy);
        self.failed += usize::from(!healthy);
        if self.recent.len() > self.config.window as usize && self.recent.pop_front() == Some(true)
        {
            self.failed -= 1;
        }
        let n = self.recent.len();
        let full = n >= self.config.window as usize;
        (full && self.failed as f64 >= self.config.error_rate * n as f64)
            .then(|| self.trip(self.failed, n, now))
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.trips = 0;
        self.recent.clear();
        self.failed = 0;
    }

    fn trip(&mut self, failed: usize, of: usize, now: Instant) -> Change {
        self.trips += 1;
        self.recent.clear();
        self.failed = 0;
        if self.trips > self.config.max_trips {
            self.state = State::GaveUp;
            return Change::GaveUp { trips: self.trips };
        }
        let factor = 2f64.powi(self.trips.saturating_sub(1).min(30) as i32);
        let pause = (self.config.pause_secs * factor).min(self.config.max_pause_secs);
        let pause = Duration::from_secs_f64(pause.max(0.0));
        self.state = State::Open { until: now + pause };
        Change::Tripped { failed, of, pause }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: 4,
            error_rate: 0.5,
            pause_secs: 1.0,
            max_pause_secs: 3.0,
            max_trips: 3,
        }
    }

    #[test]
    fn trips_pauses_probes_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        assert_eq!(b.record(false, true, t0), None);
        assert_eq!(b.record(false, false, t0), None);
        assert_eq!(b.record(false, true, t0), None);
        // 2 of 4 failed: trip for 1 s.
        assert_eq!(
            b.record(false, false, t0),
            Some(Change::Tripped {
                failed: 2,
                of: 4,
                pause: Duration::from_secs(1)
            })
        );
        assert_eq!(
            b.admit(t0 + Duration::from_millis(400)),
            Admit::Wait(Some(Duration::from_millis(600)))
        );
        // Late outcomes of attempts sent before the trip are ignored.
        assert_eq!(b.record(false, false, t0), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.admit(t1), Admit::Go { probe: true });
        assert_eq!(b.admit(t1), Admit::Wait(None), "one probe at a time");
        // The probe fails: open again, twice as long.
        assert!(matches!(
            b.record(true, false, t1),
            Some(Change::Tripped { pause, .. }) if pause == Duration::from_secs(2)
        ));
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(b.admit(t2), Admit::Go { probe: true });
        assert_eq!(b.record(true, true, t2), Some(Change::Closed));
        assert_eq!(b.admit(t2), Admit::Go { probe: false });
    }

    #[test]
    fn gives_up_after_max_trips_in_a_row() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        for _ in 0..4 {
            b.record(false, false, t0);
        }
        let mut now = t0;
        for _ in 0..2 {
            now += Duration::from_secs(10);
            assert_eq!(b.admit(now), Admit::Go { probe: true });
            assert!(matches!(
                b.record(true, false, now),
                Some(Change::Tripped { .. })
            ));
        }
        now += Duration::from_secs(10);
        assert_eq!(b.admit(now), Admit::Go { probe: true });
        assert_eq!(
            b.record(true, false, now),
            Some(Change::GaveUp { trips: 4 })
        );
        assert_eq!(b.admit(now), Admit::GaveUp);
    }

    #[test]
    fn sparse_errors_never_trip() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        for i in 0..100 {
            assert_eq!(b.record(false, i % 4 != 0, t0), None);
        }
    }
}
