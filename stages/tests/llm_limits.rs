//! The scheduler against a server that limits and fails: limits learned from
//! `x-ratelimit-*` headers, the recipe's RPM, the circuit breaker (pauses instead of
//! hammering, closes when the server recovers, gives up when it never does), and the
//! budget cap (stops sending, keeps what is done, says so; a higher budget sends only
//! the rest).

mod llm_support;

use llm_support::{Project, assert_partition, ids, plan_recipe, prompts};
use stages::llm::mock::{Fault, MockServer, Rule, Script};
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

#[test]
fn the_budget_cap_stops_sending_and_a_higher_budget_sends_the_rest() {
    let server = MockServer::start(Script::default()).unwrap();
    let p = Project::new();
    p.write("prompts.jsonl", &prompts(20, |_| ""));
    // About $0.19 per request at these prices (the mock bills body length / 4).
    let prices =
        r#"prices = { mock-model = { input_per_mtok = 1000.0, output_per_mtok = 1000.0 } }"#;
    let capped = |budget: f64| {
        plan_recipe(
            &config(
                &server.url(),
                "concurrency = 1",
                &format!("{prices}\nbudget_usd = {budget}\npolicy = {{ allow_failures = 1.0 }}"),
            ),
            "",
        )
    };
    let run = p.run(&capped(1.0), &[]);
    let output = run.output("plan");
    let failures = run.failures("plan");
    assert_partition(&ids(20), &output, &failures);
    let sent = server.counts().chat;
    assert!((4..=7).contains(&output.len()), "{} answered", output.len());
    assert_eq!(sent, output.len() as u64, "nothing sent past the cap");
    assert!(
        failures
            .iter()
            .all(|f| f.reason == "not_sent" && f.message.contains("budget cap of $1.0000"))
    );
    assert!(
        run.log().contains("stopped sending: the budget cap"),
        "{}",
        run.log()
    );
    let spent: f64 = run.ledger("plan").iter().map(|l| l.cost_usd).sum();
    assert!(spent <= 1.0 + 0.25, "${spent}");
    // The closing progress line: rows by fate, rates, errors, spend and projection.
    let answered = output.len();
    let done = format!(
        "requests done: 20/20 rows (0 from memo, {answered} answered, {} failed) | ",
        20 - answered
    );
    let log = run.log();
    let line = log
        .lines()
        .find(|l| l.contains(&done))
        .unwrap_or_else(|| panic!("no line `{done}` in\n{log}"));
    assert!(
        line.contains(" req/s, ") && line.contains("errors: none") && line.contains("projected $"),
        "{line}"
    );
    let shown: f64 = line
        .split("spent $")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no spend in {line}"));
    assert!(
        (shown - spent).abs() < 1e-3,
        "{line}: the ledger rows hold ${spent}"
    );

    let run = p.run(&capped(100.0), &[]);
    assert_eq!(run.output("plan").len(), 20);
    let done = format!(
        "requests done: 20/20 rows ({answered} from memo, {} answered, 0 failed)",
        20 - answered
    );
    assert!(run.log().contains(&done), "{}", run.log());
    assert_eq!(
        server.counts().chat,
        20,
        "only the rows not answered before"
    );
}
