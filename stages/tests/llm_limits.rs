//! The scheduler against a server that limits and fails: limits learned from
//! `x-ratelimit-*` headers, the recipe's RPM, the circuit breaker (pauses instead of
//! hammering, closes when the server recovers, gives up when it never does), and the
//! budget caps, the node's and the run's (the ledger never passes them, online or
//! batch, whatever the concurrency, latencies, answer lengths and prices; sending
//! stops and says so; a higher cap sends only the rest).

mod llm_support;

use llm::mock::{BatchScript, Fault, MockServer, Rule, Script};
use llm_support::{Project, assert_partition, ids, plan_recipe, prompts};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};
use std::time::{Duration, Instant};

fn config(url: &str, limits: &str, extra: &str) -> String {
    format!(
        r#"endpoint = {{ base_url = "{url}", model = "mock-model", timeout_secs = 2 }}
limits = {{ {limits} }}
progress_secs = 0.2
{extra}"#
    )
}

/// Run `rows` prompts through `plan` against `server`: the project (which holds the
/// store), the run and its duration.
fn plan(
    server: &MockServer,
    rows: usize,
    limits: &str,
    extra: &str,
) -> (Project, llm_support::Run, Duration) {
    let p = Project::new();
    p.write("prompts.jsonl", &prompts(rows, |_| ""));
    let started = Instant::now();
    let run = p.run(&plan_recipe(&config(&server.url(), limits, extra), ""), &[]);
    (p, run, started.elapsed())
}

#[test]
fn limits_announced_in_headers_are_learned() {
    // 600 requests per minute, enforced per second: 10/s.
    let script = Script {
        rpm: Some(600),
        ..Script::default()
    };
    let limits = "concurrency = 8, backoff_initial_secs = 0.05";
    let learned = MockServer::start(script.clone()).unwrap();
    let (_p, run, took) = plan(&learned, 40, limits, "");
    assert_eq!(run.output("plan").len(), 40, "{}", run.log());
    let learned_429 = learned.counts().rate_limited;
    assert!(
        took >= Duration::from_secs(3),
        "40 requests at 10/s: {took:?}"
    );
    assert!(learned_429 <= 8, "{learned_429} requests over the limit");

    let blind = MockServer::start(script).unwrap();
    let (_p, run, _) = plan(
        &blind,
        40,
        &format!("{limits}, learn_from_headers = false"),
        "",
    );
    assert_eq!(run.output("plan").len(), 40);
    assert!(
        blind.counts().rate_limited > learned_429,
        "without the headers, more requests hit the limit ({} vs {learned_429})",
        blind.counts().rate_limited
    );
}

#[test]
fn the_recipes_rpm_paces_requests() {
    let server = MockServer::start(Script::default()).unwrap();
    // 1200/min = 20/s, a bucket of 20: the 30 requests take at least half a second.
    let (_p, run, took) = plan(&server, 30, "concurrency = 16, rpm = 1200", "");
    assert_eq!(run.output("plan").len(), 30);
    assert!(took >= Duration::from_millis(450), "{took:?}");
}

const OUTAGE: Duration = Duration::from_millis(1500);

/// Requests sent for 24 rows while the server fails everything for 1.5 s, and the log.
fn during_outage(breaker: &str) -> (u64, String) {
    let server = MockServer::start(Script {
        rules: vec![Rule::always(Fault::server_error(503)).until(OUTAGE)],
        ..Script::default()
    })
    .unwrap();
    let limits = format!(
        "concurrency = 8, max_attempts = 1000, backoff_initial_secs = 0.01, backoff_max_secs = 0.02, breaker = {{ {breaker} }}"
    );
    let (_p, run, _) = plan(&server, 24, &limits, "");
    assert_eq!(run.output("plan").len(), 24, "{}", run.log());
    (server.counts().chat, run.log())
}

#[test]
fn the_circuit_breaker_pauses_instead_of_hammering() {
    let (with, log) =
        during_outage("window = 10, error_rate = 0.5, pause_secs = 0.4, max_pause_secs = 1");
    assert!(
        log.contains("circuit breaker open: 10 of the last 10"),
        "{log}"
    );
    assert!(log.contains("circuit breaker closed"), "{log}");
    let (without, _) = during_outage("window = 100000");
    assert!(
        with * 4 < without,
        "with the breaker {with} requests, without {without}"
    );
}

#[test]
fn the_circuit_breaker_gives_up_on_a_dead_server() {
    let server = MockServer::start(Script {
        rules: vec![Rule::always(Fault::server_error(502))],
        ..Script::default()
    })
    .unwrap();
    let limits = "concurrency = 4, max_attempts = 1000, backoff_initial_secs = 0.01, breaker = { window = 8, pause_secs = 0.05, max_trips = 2 }";
    let (_p, run, took) = plan(&server, 30, limits, "policy = { allow_failures = 1.0 }");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let failures = run.failures("plan");
    assert_partition(&ids(30), &run.output("plan"), &failures);
    assert_eq!(failures.len(), 30);
    assert!(
        failures
            .iter()
            .all(|f| f.reason == "not_sent" && f.message.contains("circuit breaker gave up")),
        "{failures:?}"
    );
    assert!(
        server.counts().chat < 40,
        "{} requests",
        server.counts().chat
    );
}

/// A budget run against a mock with these latencies and answer lengths: `rows`
/// prompts through `plan` with `executor` settings, capped by the node's `budget_usd`
/// or, with `run_cap`, by the run's `--budget-usd`.
struct Capped {
    server: MockServer,
    project: Project,
    rows: usize,
    /// The node's config, but for its budget.
    settings: String,
}

impl Capped {
    fn new(script: Script, rows: usize, limits: &str, settings: &str) -> Capped {
        let project = Project::new();
        project.write("prompts.jsonl", &prompts(rows, |_| ""));
        let server = MockServer::start(script).unwrap();
        let settings = format!(
            "{}\npolicy = {{ allow_failures = 1.0 }}",
            config(&server.url(), limits, settings)
        );
        Capped {
            server,
            project,
            rows,
            settings,
        }
    }

    fn recipe(&self, budget: Option<f64>) -> String {
        let budget = budget.map_or(String::new(), |b| format!("budget_usd = {b}"));
        plan_recipe(&format!("{}\n{budget}", self.settings), "")
    }

    /// Run with a cap, then again with a cap that covers everything: the first run's
    /// ledger stays within its cap, its unsent rows are `not_sent` failures, and the
    /// second run sends those rows and nothing else.
    fn check(&self, cap: f64, run_cap: bool) -> Result<(), TestCaseError> {
        let run = if run_cap {
            self.project.run_capped(&self.recipe(None), cap)
        } else {
            self.project.run(&self.recipe(Some(cap)), &[])
        };
        let output = run.output("plan");
        let failures = run.failures("plan");
        assert_partition(&ids(self.rows), &output, &failures);
        let spent: f64 = run.ledger("plan").iter().map(|l| l.cost_usd).sum();
        let counted = run.counter("plan", "llm_cost_micro_usd") as f64 / 1e6;
        prop_assert!(spent <= cap * (1.0 + 1e-12), "ledger ${spent} > cap ${cap}");
        prop_assert!(counted <= cap + 1e-6, "counters ${counted} > cap ${cap}");
        for f in &failures {
            prop_assert_eq!(&f.reason, "not_sent", "{:?}", f);
            prop_assert!(f.message.contains("budget cap of $"), "{:?}", f);
        }
        let sent = self.server.counts();
        let requests = sent.chat + sent.batch_lines;
        prop_assert_eq!(
            requests,
            output.len() as u64,
            "nothing sent that was not answered"
        );

        let again = self.project.run(&self.recipe(Some(1e6)), &[]);
        prop_assert_eq!(again.output("plan").len(), self.rows, "{}", again.log());
        let sent = self.server.counts();
        prop_assert_eq!(
            sent.chat + sent.batch_lines - requests,
            failures.len() as u64,
            "the second run sends the unsent rows, and only those"
        );
        Ok(())
    }
}

/// What `rows` requests would cost at these prices, roughly (for choosing caps).
fn full_cost(rows: usize, answer_tokens: (u32, u32), input_price: f64, output_price: f64) -> f64 {
    let out = f64::from(answer_tokens.0 + answer_tokens.1) / 2.0;
    rows as f64 * (60.0 * input_price + out * output_price) / 1e6
}

proptest! {
    // A fixed seed: CI runs the same cases every time (a failure reproduces).
    #![proptest_config(ProptestConfig {
        cases: 16,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(19),
        ..ProptestConfig::default()
    })]

    /// Online: the ledger never passes the cap, whatever the concurrency, latencies,
    /// answer lengths and prices.
    #[test]
    fn the_online_ledger_never_exceeds_the_cap(
        concurrency in 1u32..=256,
        latency_ms in 0u64..15,
        jitter_ms in 0u64..30,
        lo in 1u32..60,
        spread in 0u32..200,
        slack in 0u32..100,
        input_price in 10.0f64..3000.0,
        output_price in 10.0f64..3000.0,
        fraction in 0.05f64..0.9,
        run_cap in any::<bool>(),
    ) {
        let tokens = (lo, lo + spread);
        let rows = 60;
        let capped = Capped::new(
            Script {
                latency: Duration::from_millis(latency_ms),
                jitter: Duration::from_millis(jitter_ms),
                answer_tokens: Some(tokens),
                ..Script::default()
            },
            rows,
            &format!("concurrency = {concurrency}"),
            &format!(
                "sampling = {{ max_tokens = {} }}\n\
                 prices = {{ mock-model = {{ input_per_mtok = {input_price}, output_per_mtok = {output_price} }} }}",
                tokens.1 + slack
            ),
        );
        capped.check(fraction * full_cost(rows, tokens, input_price, output_price), run_cap)?;
    }

    /// The Batch API: a batch holds only the requests whose worst cases fit.
    #[test]
    fn the_batch_ledger_never_exceeds_the_cap(
        max_requests in 1u32..40,
        lo in 1u32..60,
        spread in 0u32..200,
        input_price in 10.0f64..3000.0,
        output_price in 10.0f64..3000.0,
        fraction in 0.05f64..0.9,
    ) {
        let tokens = (lo, lo + spread);
        let rows = 50;
        let capped = Capped::new(
            Script {
                answer_tokens: Some(tokens),
                batch: BatchScript {
                    latency: Duration::from_millis(10),
                    ..BatchScript::default()
                },
                ..Script::default()
            },
            rows,
            "",
            &format!(
                "executor = \"batch\"\nbatch = {{ poll_secs = 0.01, max_requests = {max_requests} }}\n\
                 sampling = {{ max_tokens = {} }}\n\
                 prices = {{ mock-model = {{ input_per_mtok = {input_price}, output_per_mtok = {output_price} }} }}",
                tokens.1
            ),
        );
        // The batch price factor halves the bill.
        capped.check(fraction * full_cost(rows, tokens, input_price, output_price) / 2.0, false)?;
    }
}

#[test]
fn the_budget_stops_sending_says_so_and_shows_spend_against_the_cap() {
    let capped = Capped::new(
        Script {
            answer_tokens: Some((100, 100)),
            ..Script::default()
        },
        20,
        "concurrency = 32",
        "sampling = { max_tokens = 400 }\n\
         prices = { mock-model = { input_per_mtok = 1000.0, output_per_mtok = 1000.0 } }",
    );
    let run = capped.project.run(&capped.recipe(Some(3.0)), &[]);
    let answered = run.output("plan").len();
    // About $0.23 per answer; each reservation is $0.95 (the prompt's bytes, and
    // 400 tokens out), so the last answers go one or two at a time.
    assert!(
        (6..=11).contains(&answered),
        "{answered} answered\n{}",
        run.log()
    );
    let log = run.log();
    assert!(
        log.contains("stopped sending: the budget cap of $3.0000 (budget_usd) is reached"),
        "{log}"
    );
    let done = format!(
        "requests done: 20/20 rows (0 from memo, {answered} answered, {} failed) | ",
        20 - answered
    );
    let line = log
        .lines()
        .find(|l| l.contains(&done))
        .unwrap_or_else(|| panic!("no line `{done}` in\n{log}"));
    let spent: f64 = run.ledger("plan").iter().map(|l| l.cost_usd).sum();
    assert!(spent <= 3.0, "${spent}");
    assert!(
        line.contains(&format!("spent ${spent:.4} of $3.0000 (budget_usd)")),
        "{line}"
    );
}

#[test]
fn the_runs_cap_spans_its_nodes() {
    let capped = Capped::new(
        Script {
            answer_tokens: Some((50, 50)),
            ..Script::default()
        },
        40,
        "",
        "sampling = { max_tokens = 100 }\n\
         prices = { mock-model = { input_per_mtok = 1000.0, output_per_mtok = 1000.0 } }",
    );
    // A second node plans the same prompts with another template: other requests.
    let second = format!(
        "[nodes.again]\nkind = \"rationale.plan\"\ninputs = {{ prompts = \"prompts\" }}\n\
         [nodes.again.config]\n{}\ntemplate = {{ version = 9, user = \"Once more: {{prompt}}\" }}",
        capped.settings
    );
    let recipe = plan_recipe(&capped.settings, &second);
    let run = capped.project.run_capped(&recipe, 2.0);
    let spent: f64 = ["plan", "again"]
        .iter()
        .flat_map(|n| run.ledger(n))
        .map(|l| l.cost_usd)
        .sum();
    let answered = run.output("plan").len() + run.output("again").len();
    assert!(spent <= 2.0 && spent > 1.0, "${spent}\n{}", run.log());
    assert!((5..80).contains(&answered), "{answered}");
    assert!(
        run.log().contains("(the run's --budget-usd)"),
        "{}",
        run.log()
    );
    // The node's own checks: without a bound on answers, the run's cap is refused.
    let unbounded = plan_recipe(&config(&capped.server.url(), "", ""), "");
    let run = capped.project.run_capped(&unbounded, 2.0);
    assert!(
        run.error("plan")
            .contains("the run's --budget-usd needs the price of `mock-model`"),
        "{}",
        run.error("plan")
    );
}
