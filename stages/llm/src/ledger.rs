//! The ledger of a node run: attempts, retries, memo hits, answers and failures, tokens
//! in and out, errors by class, and money, charged for every attempt the server billed
//! (failed and retried ones included) at the recipe's price for the model (times the
//! batch factor for the Batch API). It prices a request's worst case for the budgets'
//! reservations, writes the progress line (rates, spend against the caps, projected
//! spend) and keeps the node's counters current.

use super::answer::Spend;
use super::client::Reply;
use super::config::{LlmConfig, Price};
use super::errors::ErrorClass;
use super::request::Request;
use pipeline::StageContext;
use pipeline::budget::{Budget, NANO, nano};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct Ledger {
    started: Instant,
    rows: u64,
    price: Option<Price>,
    price_factor: f64,
    /// The caps the node spends under, shown in the progress line.
    budgets: Vec<Arc<Budget>>,
    attempts: AtomicU64,
    retries: AtomicU64,
    in_flight: AtomicU64,
    billed: AtomicU64,
    hits: AtomicU64,
    duplicates: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
    spent_nano: AtomicU64,
    errors: [AtomicU64; ErrorClass::ALL.len()],
    /// Counter values already added to the node's counters.
    published: Mutex<BTreeMap<String, u64>>,
}

impl Ledger {
    /// A ledger for `rows` input rows, spending under `budgets`.
    pub fn new(config: &LlmConfig, rows: u64, budgets: Vec<Arc<Budget>>) -> Ledger {
        Ledger {
            started: Instant::now(),
            rows,
            price: config.price(),
            price_factor: config.price_factor(),
            budgets,
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            billed: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            tokens_in: AtomicU64::new(0),
            tokens_out: AtomicU64::new(0),
            spent_nano: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            published: Mutex::new(BTreeMap::new()),
        }
    }

    /// An attempt goes out (`retry`: not the request's first).
    pub fn sending(&self, retry: bool) {
        self.attempts.fetch_add(1, Relaxed);
        self.retries.fetch_add(u64::from(retry), Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// The attempt came back (with or without an answer).
    pub fn returned(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// What `input_tokens` in and `output_tokens` out cost, in USD.
    fn price_of(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        self.price.map_or(0.0, |p| {
            p.usd(input_tokens as f64, output_tokens as f64) * self.price_factor
        })
    }

    /// The most an attempt of these token bounds can be billed, in nano-dollars.
    pub fn worst_case(&self, input_tokens: u64, output_tokens: u64) -> u64 {
        nano(self.price_of(input_tokens, output_tokens))
    }

    /// Charge the tokens the server billed for one attempt.
    pub fn charge(&self, input_tokens: u64, output_tokens: u64) -> Spend {
        let cost_usd = self.price_of(input_tokens, output_tokens);
        self.tokens_in.fetch_add(input_tokens, Relaxed);
        self.tokens_out.fetch_add(output_tokens, Relaxed);
        self.spent_nano.fetch_add(nano(cost_usd), Relaxed);
        self.billed.fetch_add(1, Relaxed);
        Spend {
            input_tokens,
            output_tokens,
            cost_usd,
        }
    }

    /// Charge a reply: the server's usage, or without it, the input's bound and the
    /// answer's bytes (at most `max_tokens`), which no token count exceeds.
    pub fn charge_reply(&self, reply: &Reply, request: &Request) -> Spend {
        let (tin, tout) = reply.usage.unwrap_or_else(|| {
            let bytes = reply.content.as_ref().map_or(0, |c| c.len() as u64);
            (
                request.input.worst,
                request.max_out.map_or(bytes, |m| bytes.min(m)),
            )
        });
        self.charge(tin, tout)
    }

    pub fn error(&self, class: ErrorClass) {
        self.errors[class.index()].fetch_add(1, Relaxed);
    }

    pub fn hit(&self) {
        self.hits.fetch_add(1, Relaxed);
    }

    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Relaxed);
    }

    pub fn answered(&self) {
        self.answered.fetch_add(1, Relaxed);
    }

    pub fn failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }

    pub fn spent_usd(&self) -> f64 {
        self.spent_nano.load(Relaxed) as f64 / NANO
    }

    /// Rows resolved so far (memo hits, duplicates, answers, failures).
    fn rows_done(&self) -> u64 {
        self.hits.load(Relaxed)
            + self.duplicates.load(Relaxed)
            + self.answered.load(Relaxed)
            + self.failed.load(Relaxed)
    }

    /// The node's counters, as totals.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut c = BTreeMap::new();
        for (name, v) in [
            ("llm_requests", &self.attempts),
            ("llm_retries", &self.retries),
            ("llm_memo_hits", &self.hits),
            ("llm_duplicate_rows", &self.duplicates),
            ("llm_answered", &self.answered),
            ("llm_failed_rows", &self.failed),
            ("llm_tokens_in", &self.tokens_in),
            ("llm_tokens_out", &self.tokens_out),
        ] {
            c.insert(name.to_string(), v.load(Relaxed));
        }
        c.insert(
            "llm_cost_micro_usd".into(),
            self.spent_nano.load(Relaxed) / 1000,
        );
        for class in ErrorClass::ALL {
            let n = self.errors[class.index()].load(Relaxed);
            if n > 0 {
                c.insert(format!("llm_errors_{}", class.as_str()), n);
            }
        }
        c
    }

    /// Bring the node's counters up to date and write them to the event stream.
    pub fn publish(&self, ctx: &StageContext) {
        let now = self.counters();
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for (name, v) in &now {
            let before = published.get(name).copied().unwrap_or(0);
            if *v > before {
                ctx.count(name, v - before);
            }
        }
        *published = now;
        drop(published);
        ctx.emit_counters();
    }

    /// One line of progress: rows, rates, memo hits, retries, errors by class, spend.
    pub fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let done = self.rows_done();
        let hits = self.hits.load(Relaxed) + self.duplicates.load(Relaxed);
        let sent_rows = self.answered.load(Relaxed) + self.failed.load(Relaxed);
        let errors: Vec<String> = ErrorClass::ALL
            .iter()
            .filter_map(|c| {
                let n = self.errors[c.index()].load(Relaxed);
                (n > 0).then(|| format!("{} {n}", c.as_str()))
            })
            .collect();
        let spent = self.spent_usd();
        // What the rows left will cost if they miss the memo as often, and cost as
        // much, as the rows so far.
        let projected = if sent_rows > 0 {
            let miss_rate = sent_rows as f64 / (sent_rows + hits) as f64;
            spent + self.rows.saturating_sub(done) as f64 * miss_rate * spent / sent_rows as f64
        } else {
            spent
        };
        let caps: String = self
            .budgets
            .iter()
            .map(|b| format!(" of ${:.4} ({})", b.cap_usd(), b.label()))
            .collect();
        format!(
            "{done}/{} rows ({hits} from memo, {} answered, {} failed) | {:.1} req/s, {:.0} tok/s in, {:.0} tok/s out | {} retries, errors: {} | spent ${spent:.4}{caps}, projected ${projected:.4}",
            self.rows,
            self.answered.load(Relaxed),
            self.failed.load(Relaxed),
            self.attempts.load(Relaxed) as f64 / secs,
            self.tokens_in.load(Relaxed) as f64 / secs,
            self.tokens_out.load(Relaxed) as f64 / secs,
            self.retries.load(Relaxed),
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(", ")
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(budget: Option<f64>) -> LlmConfig {
        serde_json::from_value(serde_json::json!({
            "endpoint": {"base_url": "http://127.0.0.1:1/v1", "model": "m"},
            "prices": {"m": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}},
            "budget_usd": budget,
        }))
        .unwrap()
    }

    #[test]
    fn charges_and_counts() {
        let l = Ledger::new(&config(None), 10, vec![]);
        l.sending(false);
        let s = l.charge(1_000, 500);
        l.returned();
        assert!((s.cost_usd - 0.003).abs() < 1e-12);
        l.sending(true);
        l.charge(1_000, 0);
        l.returned();
        l.error(ErrorClass::Truncated);
        l.answered();
        let c = l.counters();
        assert_eq!(c["llm_requests"], 2);
        assert_eq!(c["llm_retries"], 1);
        assert_eq!(c["llm_tokens_in"], 2_000);
        assert_eq!(c["llm_cost_micro_usd"], 4_000);
        assert_eq!(c["llm_errors_truncated"], 1);
        assert!(l.line().contains("spent $0.0040"), "{}", l.line());
        // The batch factor halves the price.
        let mut batch = config(None);
        batch.executor = crate::config::Executor::Batch;
        let b = Ledger::new(&batch, 1, vec![]);
        assert!((b.charge(1_000, 500).cost_usd - 0.0015).abs() < 1e-12);
    }

    #[test]
    fn worst_cases_round_up_and_the_line_shows_the_caps() {
        let cap = Budget::new("budget_usd", 0.01);
        let l = Ledger::new(&config(Some(0.01)), 100, vec![cap]);
        // 1 token in at $1/M and 1 out at $4/M: $5e-6, exactly 5,000 nano-dollars.
        assert_eq!(l.worst_case(1, 1), 5_000);
        assert_eq!(l.worst_case(1, 0), 1_000);
        assert!(
            l.line().contains("spent $0.0000 of $0.0100 (budget_usd)"),
            "{}",
            l.line()
        );
    }
}
