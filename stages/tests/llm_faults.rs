//! Every input row ends as exactly one output row or one failure row with a reason, with
//! retries bounded, under each fault the mock server scripts: 429 with and without
//! `Retry-After` (seconds and HTTP date), 5xx, requests that never get an answer,
//! dropped connections, 400 context too long, and, for structured answers, invalid
//! JSON, schema-violating JSON, `finish_reason=length` and null content.

mod llm_support;

use llm::mock::{Fault, MockServer, RetryAfter, Rule, Script};
use llm_support::{Project, assert_partition, endpoint, ids, plan_recipe, prompts};
use std::time::{Duration, Instant};

const ROWS: usize = 12;
/// Rows 0..4 carry the marker the faults match.
fn marker(i: usize) -> &'static str {
    if i < 4 { "FAULTY" } else { "" }
}

/// `limits.max_attempts` + `limits.max_invalid` of [`endpoint`]: no request is sent
/// more often.
const MAX_SENDS: u64 = 4 + 3;

struct Case {
    name: &'static str,
    fault: Fault,
    /// `Some(n)`: the fault hits a request n times, then it is answered.
    times: Option<u32>,
    /// The reason of the marked rows' failures, when the fault is permanent.
    reason: Option<&'static str>,
    /// Requests each marked row is sent, when that is exact.
    sends: Option<u64>,
}

fn case(
    name: &'static str,
    fault: Fault,
    times: Option<u32>,
    reason: Option<&'static str>,
) -> Case {
    Case {
        name,
        fault,
        times,
        reason,
        sends: None,
    }
}

/// Run `case` on `plan` (text answers) or on `augment` (JSON answers, after `plan`).
fn check(case: Case, structured: bool) {
    let mut rule = Rule::always(case.fault).when("FAULTY");
    if structured {
        rule = rule.when("short_caption");
    }
    if let Some(n) = case.times {
        rule = rule.times(n);
    }
    let server = MockServer::start(Script {
        rules: vec![rule],
        ..Script::default()
    })
    .unwrap();
    let p = Project::new();
    p.write("prompts.jsonl", &prompts(ROWS, marker));
    let policy = r#"policy = { allow_failures = 1.0 }"#;
    let recipe = if structured {
        plan_recipe(
            &endpoint(&server.url()),
            &format!(
                "[nodes.augment]\nkind = \"rationale.augment\"\ninputs = {{ rationales = \"plan\" }}\n[nodes.augment.config]\n{}\n{policy}",
                endpoint(&server.url())
            ),
        )
    } else {
        plan_recipe(&format!("{}\n{policy}", endpoint(&server.url())), "")
    };
    let node = if structured { "augment" } else { "plan" };
    let run = p.run(&recipe, &[]);
    let output = run.output(node);
    let failures = run.failures(node);
    assert_partition(&ids(ROWS), &output, &failures);
    let ledger = run.ledger(node);
    assert_eq!(
        ledger.len(),
        ROWS,
        "{}: one ledger row per input row",
        case.name
    );
    let sends = server.counts().chat - if structured { ROWS as u64 } else { 0 };
    assert!(
        sends <= ROWS as u64 * MAX_SENDS,
        "{}: {sends} requests for {ROWS} rows: retries must be bounded",
        case.name
    );
    match case.reason {
        None => assert!(
            failures.is_empty(),
            "{}: a transient fault must not fail rows: {failures:?}\n{}",
            case.name,
            run.log()
        ),
        Some(reason) => {
            let failed: Vec<&str> = failures.iter().map(|f| f.id.as_str()).collect();
            assert_eq!(
                failed,
                ["p-000", "p-001", "p-002", "p-003"],
                "{}",
                case.name
            );
            for f in &failures {
                assert_eq!(f.reason, reason, "{}: {f:?}", case.name);
                assert_eq!(f.request_key.len(), 64);
            }
        }
    }
    if let Some(per_row) = case.sends {
        assert_eq!(sends, (ROWS - 4) as u64 + 4 * per_row, "{}", case.name);
    }
    // Every answered row carries its provenance.
    for r in &output {
        let prov = r.provenance.last().unwrap();
        assert_eq!(prov.task, node);
        assert_eq!(prov.model, "mock-model");
        assert_eq!(prov.template_version, 1);
        assert_eq!(prov.request_key.len(), 64);
    }
}

#[test]
fn transport_faults_that_pass_are_retried_and_every_row_is_answered() {
    for case in [
        case(
            "429 without Retry-After",
            Fault::RateLimited(None),
            Some(2),
            None,
        ),
        case("503", Fault::server_error(503), Some(2), None),
        case("500", Fault::server_error(500), Some(1), None),
        case("no answer", Fault::Hang, Some(1), None),
        case("dropped connection", Fault::Drop, Some(2), None),
    ] {
        check(case, false);
    }
}

#[test]
fn retry_after_in_both_forms_is_honoured() {
    for (name, retry_after) in [
        ("seconds", RetryAfter::Seconds(1)),
        ("HTTP date", RetryAfter::Date(Duration::from_secs(2))),
    ] {
        let started = Instant::now();
        check(
            case(name, Fault::RateLimited(Some(retry_after)), Some(1), None),
            false,
        );
        // The HTTP date has one-second resolution: at least a second passes.
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "{name}: Retry-After was not honoured ({:?})",
            started.elapsed()
        );
    }
}

#[test]
fn transport_faults_that_persist_fail_their_rows_only() {
    for case in [
        Case {
            sends: Some(4),
            ..case(
                "429 forever",
                Fault::RateLimited(None),
                None,
                Some("rate_limited"),
            )
        },
        Case {
            sends: Some(4),
            ..case(
                "503 forever",
                Fault::server_error(503),
                None,
                Some("server_error"),
            )
        },
        case("never answers", Fault::Hang, None, Some("timeout")),
        case("always dropped", Fault::Drop, None, Some("connection")),
        Case {
            sends: Some(1),
            ..case(
                "context too long",
                Fault::context_length(),
                None,
                Some("context_length"),
            )
        },
    ] {
        check(case, false);
    }
}

#[test]
fn invalid_answers_are_retried_then_failed_with_their_raw_text() {
    for case in [
        case("invalid JSON once", Fault::InvalidJson, Some(1), None),
        case(
            "schema violation twice",
            Fault::SchemaViolation,
            Some(2),
            None,
        ),
        case("cut at max_tokens once", Fault::Truncated, Some(1), None),
        case("null content twice", Fault::Empty, Some(2), None),
        Case {
            sends: Some(3),
            ..case(
                "invalid JSON always",
                Fault::InvalidJson,
                None,
                Some("invalid_json"),
            )
        },
        Case {
            sends: Some(3),
            ..case(
                "schema violation always",
                Fault::SchemaViolation,
                None,
                Some("schema_mismatch"),
            )
        },
        Case {
            sends: Some(3),
            ..case("always cut", Fault::Truncated, None, Some("truncated"))
        },
        Case {
            sends: Some(3),
            ..case("always null", Fault::Empty, None, Some("empty"))
        },
    ] {
        check(case, true);
    }
}
