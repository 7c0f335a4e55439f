//! Politeness: at most `concurrency` requests in flight over all hosts, at most
//! `per_host_concurrency` to one host, and request starts to one host spaced by
//! `1 / per_host_requests_per_second`. Hosts with nothing in flight and no pending
//! spacing are forgotten once many are known, so memory follows the hosts in use,
//! not every host a list has named.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Hosts remembered before idle ones are forgotten.
const HOSTS_KEPT: usize = 4096;

struct Host {
    slots: Arc<Semaphore>,
    /// When the next request to the host may start.
    next_start: Mutex<Instant>,
}

/// The limits shared by every request of a run.
pub struct Limiter {
    global: Arc<Semaphore>,
    per_host: usize,
    spacing: Option<Duration>,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

/// Leave to send one request; dropping it frees the slots.
pub struct Permit {
    _global: OwnedSemaphorePermit,
    _host: OwnedSemaphorePermit,
}

impl Limiter {
    pub fn new(concurrency: u32, per_host: u32, per_host_rate: f64) -> Limiter {
        Limiter {
            global: Arc::new(Semaphore::new(concurrency as usize)),
            per_host: per_host as usize,
            spacing: (per_host_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / per_host_rate)),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    fn host(&self, name: &str) -> Arc<Host> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if hosts.len() >= HOSTS_KEPT && !hosts.contains_key(name) {
            let now = Instant::now();
            hosts.retain(|_, h| {
                Arc::strong_count(h) > 1
                    || *h.next_start.lock().unwrap_or_else(|p| p.into_inner()) > now
            });
        }
        hosts
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Host {
                    slots: Arc::new(Semaphore::new(self.per_host)),
                    next_start: Mutex::new(Instant::now()),
                })
            })
            .clone()
    }

    /// Wait for a slot to `host` (and its turn under the rate), then for a global one.
    pub async fn acquire(&self, host: &str) -> Permit {
        let entry = self.host(host);
        let host_permit = entry
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the limiter's semaphores are never closed");
        if let Some(spacing) = self.spacing {
            let start = {
                let mut next = entry.next_start.lock().unwrap_or_else(|p| p.into_inner());
                let start = (*next).max(Instant::now());
                *next = start + spacing;
                start
            };
            tokio::time::sleep_until(start).await;
        }
        let global = self
            .global
            .clone()
            .acquire_owned()
            .await
            .expect("the limiter's semaphores are never closed");
        Permit {
            _global: global,
            _host: host_permit,
        }
    }

    /// Hosts currently remembered.
    #[cfg(test)]
    fn known_hosts(&self) -> usize {
        self.hosts.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_host_is_spaced_and_capped_while_another_is_not_held_up() {
        let limiter = Arc::new(Limiter::new(10, 2, 20.0));
        let t0 = Instant::now();
        let a1 = limiter.acquire("a").await;
        let _a2 = limiter.acquire("a").await;
        assert!(
            t0.elapsed() >= Duration::from_millis(50),
            "spaced by 1/rate"
        );
        let third = {
            let l = limiter.clone();
            tokio::spawn(async move {
                let _p = l.acquire("a").await;
                Instant::now()
            })
        };
        let t1 = Instant::now();
        let _b = limiter.acquire("b").await;
        assert!(
            t1.elapsed() < Duration::from_millis(40),
            "host b waits for nothing"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!third.is_finished(), "two in flight to `a` already");
        let freed = Instant::now();
        drop(a1);
        let started = third.await.unwrap();
        assert!(started >= freed, "the third waited for a slot");
    }

    #[tokio::test]
    async fn idle_hosts_are_forgotten() {
        let limiter = Limiter::new(4, 1, 0.0);
        for i in 0..HOSTS_KEPT + 10 {
            drop(limiter.acquire(&format!("h{i}")).await);
        }
        assert!(
            limiter.known_hosts() <= HOSTS_KEPT,
            "{}",
            limiter.known_hosts()
        );
    }
}
