//! Money caps that are never exceeded: a node's own cap, or a whole run's
//! (`reasongen run --budget-usd`) shared by every node that spends.
//!
//! Spending goes in two steps. Before spending, the worst case is *reserved*: admitted
//! only while spent + reserved + the new worst case stays within the cap of every
//! budget it is charged to. When the bill is known, the reservation is *settled*: the
//! worst case leaves `reserved` and the actual cost joins `spent`. So the sum of
//! actual costs never passes the cap as long as each bill stays within its worst case
//! (a bill above it is reported back as an [`Overrun`], for the spender to stop).
//!
//! Amounts are nano-dollars (`u64`), so that many tiny costs add up exactly. A
//! reservation dropped without being settled (a cancelled request, which the server may
//! still bill) counts its whole worst case as spent.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use tokio::sync::Notify;

/// Nano-dollars per dollar.
pub const NANO: f64 = 1e9;

/// Dollars as nano-dollars, rounded to the nearest. Rounding is monotone, so a bill
/// within its worst case in dollars is within it in nano-dollars too.
pub fn nano(usd: f64) -> u64 {
    (usd * NANO).round().max(0.0) as u64
}

/// One cap and what has been spent and reserved under it.
#[derive(Debug)]
pub struct Budget {
    /// What the cap is called in messages (`budget_usd`, `the run's --budget-usd`).
    label: String,
    cap: u64,
    totals: Mutex<Totals>,
    freed: Notify,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    spent: u64,
    reserved: u64,
}

/// The outcome of asking to reserve.
#[derive(Debug)]
pub enum Admission {
    Granted(Reservation),
    /// It does not fit now, but reservations in flight may free room: wait for
    /// [`freed`] and ask again.
    Wait,
    /// It can never fit: nothing is reserved and the cap is too close. The message says
    /// which cap, what is spent and what was asked.
    Never(String),
}

/// A worst case held against one or more budgets until settled.
#[derive(Debug)]
pub struct Reservation {
    budgets: Vec<Arc<Budget>>,
    amount: u64,
    settled: bool,
}

/// A bill above its reservation: the worst-case bound did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun {
    pub reserved: u64,
    pub actual: u64,
}

impl Budget {
    pub fn new(label: impl Into<String>, cap_usd: f64) -> Arc<Budget> {
        Arc::new(Budget {
            label: label.into(),
            cap: nano(cap_usd),
            totals: Mutex::new(Totals::default()),
            freed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn cap_usd(&self) -> f64 {
        self.cap as f64 / NANO
    }

    pub fn spent_usd(&self) -> f64 {
        self.lock().spent as f64 / NANO
    }

    pub fn reserved_usd(&self) -> f64 {
        self.lock().reserved as f64 / NANO
    }

    /// Count `amount` as reserved whatever the cap (work already paid for elsewhere,
    /// such as a batch an earlier run submitted): it only narrows what is admitted next.
    pub fn commit(budgets: &[Arc<Budget>], amount: u64) -> Reservation {
        for b in budgets {
            b.lock().reserved += amount;
        }
        Reservation {
            budgets: budgets.to_vec(),
            amount,
            settled: false,
        }
    }

    /// Reserve `amount` against every budget in `budgets` at once, or none of them.
    /// Budgets are locked in the order given: callers list a node's own budget before
    /// the run's, so that no two callers lock in opposite orders.
    pub fn reserve(budgets: &[Arc<Budget>], amount: u64) -> Admission {
        let mut guards: Vec<_> = budgets.iter().map(|b| b.lock()).collect();
        let short = guards
            .iter()
            .zip(budgets)
            .find(|(t, b)| t.spent + t.reserved + amount > b.cap);
        if let Some((t, b)) = short {
            if t.reserved > 0 {
                return Admission::Wait;
            }
            return Admission::Never(format!(
                "the budget cap of ${:.4} ({}) is reached: ${:.4} spent, and the next request could cost up to ${:.4}",
                b.cap as f64 / NANO,
                b.label,
                t.spent as f64 / NANO,
                amount as f64 / NANO
            ));
        }
        for t in guards.iter_mut() {
            t.reserved += amount;
        }
        drop(guards);
        Admission::Granted(Reservation {
            budgets: budgets.to_vec(),
            amount,
            settled: false,
        })
    }

    /// Resolves once some reservation under any of `budgets` was settled. Create it
    /// *before* asking to reserve, so that a settlement in between is not missed.
    pub fn freed(budgets: &[Arc<Budget>]) -> impl Future<Output = ()> + '_ {
        let mut waits: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = budgets
            .iter()
            .map(|b| Box::pin(b.freed.notified()))
            .collect();
        for w in &mut waits {
            w.as_mut().enable();
        }
        std::future::poll_fn(move |cx| {
            if waits.is_empty() {
                return Poll::Pending;
            }
            for w in &mut waits {
                if w.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
    }
}

impl Reservation {
    /// The worst case held, in nano-dollars.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Replace the worst case by the bill (`actual` nano-dollars). `Err` when the bill
    /// was above the worst case (it is counted all the same).
    pub fn settle(mut self, actual: u64) -> Result<(), Overrun> {
        self.release(actual);
        if actual > self.amount {
            return Err(Overrun {
                reserved: self.amount,
                actual,
            });
        }
        Ok(())
    }

    /// Give the reservation back unspent (the request was not sent).
    pub fn cancel(mut self) {
        self.release(0);
    }

    fn release(&mut self, actual: u64) {
        if self.settled {
            return;
        }
        self.settled = true;
        for b in &self.budgets {
            let mut t = b.lock();
            t.reserved -= self.amount;
            t.spent += actual;
            drop(t);
            b.freed.notify_waiters();
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let amount = self.amount;
        self.release(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(a: Admission) -> Reservation {
        match a {
            Admission::Granted(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn admits_within_the_cap_waits_while_in_flight_and_refuses_when_idle() {
        let b = Budget::new("budget_usd", 1.0);
        let bs = [b.clone()];
        let r1 = granted(Budget::reserve(&bs, nano(0.6)));
        // 0.6 + 0.6 > 1.0 while 0.6 is in flight: wait.
        assert!(matches!(Budget::reserve(&bs, nano(0.6)), Admission::Wait));
        r1.settle(nano(0.5)).unwrap();
        // 0.5 spent, nothing in flight: 0.6 can never fit, 0.5 can.
        match Budget::reserve(&bs, nano(0.6)) {
            Admission::Never(why) => {
                assert!(why.contains("$1.0000 (budget_usd)") && why.contains("$0.5000 spent"))
            }
            other => panic!("{other:?}"),
        }
        granted(Budget::reserve(&bs, nano(0.5)))
            .settle(nano(0.5))
            .unwrap();
        assert_eq!(b.spent_usd(), 1.0);
    }

    #[test]
    fn both_budgets_or_neither() {
        let node = Budget::new("budget_usd", 10.0);
        let run = Budget::new("--budget-usd", 1.0);
        let both = [node.clone(), run.clone()];
        let r = granted(Budget::reserve(&both, nano(0.8)));
        assert!(matches!(Budget::reserve(&both, nano(0.8)), Admission::Wait));
        assert_eq!(
            node.reserved_usd(),
            0.8,
            "the refused one left nothing held"
        );
        // An overrun is reported and counted.
        assert_eq!(
            r.settle(nano(0.9)),
            Err(Overrun {
                reserved: nano(0.8),
                actual: nano(0.9)
            })
        );
        assert_eq!((node.spent_usd(), run.spent_usd()), (0.9, 0.9));
        assert_eq!(run.reserved_usd(), 0.0);
    }

    #[test]
    fn a_dropped_reservation_counts_as_spent() {
        let b = Budget::new("cap", 1.0);
        drop(granted(Budget::reserve(
            std::slice::from_ref(&b),
            nano(0.25),
        )));
        assert_eq!((b.spent_usd(), b.reserved_usd()), (0.25, 0.0));
        drop(Budget::commit(std::slice::from_ref(&b), nano(0.5)));
        assert_eq!(b.spent_usd(), 0.75);
    }

    #[tokio::test]
    async fn a_settlement_wakes_a_waiter() {
        let b = Budget::new("cap", 1.0);
        let bs = [b.clone()];
        let r = granted(Budget::reserve(&bs, nano(1.0)));
        let waiter = {
            let bs = bs.clone();
            tokio::spawn(async move {
                loop {
                    let freed = Budget::freed(&bs);
                    match Budget::reserve(&bs, nano(0.5)) {
                        Admission::Granted(r) => return r.amount(),
                        Admission::Wait => freed.await,
                        Admission::Never(why) => panic!("{why}"),
                    }
                }
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        r.settle(nano(0.3)).unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(2), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got, nano(0.5));
    }
}
