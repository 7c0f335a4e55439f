//! Structured output and the failure policy: the augmented prompts of the five families
//! come back valid in each mode (`json_schema`, `json_object`, schema in the prompt
//! only); `require_all` fails the stage after writing every failure to the run's log
//! folder; `allow_failures` publishes them as the artifact's failures table, up to its
//! fraction.

mod llm_support;

use llm::mock::{Fault, MockServer, Rule, Script};
use llm_support::{Project, assert_partition, endpoint, ids, plan_recipe, prompts};
use pipeline::executor::Outcome;

const ROWS: usize = 20;

fn augment(url: &str, extra: &str) -> String {
    plan_recipe(
        &endpoint(url),
        &format!(
            "[nodes.augment]\nkind = \"rationale.augment\"\ninputs = {{ rationales = \"plan\" }}\n[nodes.augment.config]\n{}\n{extra}",
            endpoint(url)
        ),
    )
}

#[test]
fn every_mode_yields_valid_prompts_in_the_five_families() {
    for mode in ["json_schema", "json_object", "prompt"] {
        let server = MockServer::start(Script::default()).unwrap();
        let p = Project::new();
        p.write("prompts.jsonl", &prompts(ROWS, |_| ""));
        let run = p.run(
            &augment(&server.url(), &format!("structured = \"{mode}\"")),
            &[],
        );
        let rows = run.output("augment");
        assert_eq!(rows.len(), ROWS, "{mode}:\n{}", run.log());
        let plans = run.output("plan");
        for (r, plan) in rows.iter().zip(&plans) {
            // The row is the plan's row, with prompts and one more provenance record.
            assert_eq!(r.id, plan.id);
            assert_eq!(r.detailed_caption, plan.detailed_caption);
            let a = r.augmented_prompts.as_ref().expect("augmented prompts");
            assert!(a.short_caption.as_deref().is_some_and(|s| !s.is_empty()));
            for list in [
                &a.paraphrases,
                &a.tags,
                &a.varied_captions,
                &a.object_prompts,
            ] {
                assert!(!list.is_empty(), "{mode}: {a:?}");
            }
            let tasks: Vec<&str> = r.provenance.iter().map(|p| p.task.as_str()).collect();
            assert_eq!(tasks, ["plan", "augment"]);
            assert_ne!(r.provenance[0].request_key, r.provenance[1].request_key);
        }
        // Each mode asks differently, so each has its own request keys.
        assert_eq!(server.counts().chat, 2 * ROWS as u64);
    }
}

fn one_bad_row(url_policy: &str) -> (Project, MockServer, llm_support::Run) {
    let server = MockServer::start(Script {
        rules: vec![
            Rule::always(Fault::SchemaViolation)
                .when("cubes BROKEN")
                .when("short_caption"),
        ],
        ..Script::default()
    })
    .unwrap();
    let p = Project::new();
    p.write(
        "prompts.jsonl",
        &prompts(ROWS, |i| if i == 7 { "BROKEN" } else { "" }),
    );
    let run = p.run(&augment(&server.url(), url_policy), &[]);
    (p, server, run)
}

#[test]
fn require_all_fails_the_stage_after_writing_its_failures() {
    let (_p, _server, run) = one_bad_row("");
    let error = run.error("augment");
    assert!(
        error.contains("1 of 20 rows failed (schema_mismatch 1)")
            && error.contains("require_all")
            && error.contains("row `p-007`"),
        "{error}"
    );
    let path = error
        .split("All failures: ")
        .nth(1)
        .and_then(|rest| rest.split(". First").next())
        .expect("the message names the failures file");
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], "p-007");
    assert_eq!(lines[0]["reason"], "schema_mismatch");
    assert_eq!(lines[0]["raw"], r#"{"unexpected": true}"#);
    assert_eq!(lines[0]["attempts"], 3);
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("missing required property"),
        "{text}"
    );
}

#[test]
fn allow_failures_publishes_the_failures_table_within_its_fraction() {
    let (_p, _server, run) = one_bad_row("policy = { allow_failures = 0.05 }");
    let output = run.output("augment");
    let failures = run.failures("augment");
    assert_partition(&ids(ROWS), &output, &failures);
    assert_eq!(output.len(), ROWS - 1);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].raw.as_deref(), Some(r#"{"unexpected": true}"#));
    // The ledger has a row per input row, in input order, with tokens for answers.
    let ledger = run.ledger("augment");
    assert_eq!(
        ledger.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
        ids(ROWS)
    );
    assert_eq!(ledger[7].status, "failed");
    assert!(
        ledger
            .iter()
            .filter(|l| l.status == "answered")
            .all(|l| l.input_tokens > 0 && l.output_tokens > 0)
    );
    // Output rows keep input order.
    let out_ids: Vec<&str> = output.iter().map(|r| r.id.as_str()).collect();
    let mut sorted = out_ids.clone();
    sorted.sort();
    assert_eq!(out_ids, sorted);

    let (_p, _server, run) = one_bad_row("policy = { allow_failures = 0.01 }");
    assert!(matches!(run.outcome("augment"), Outcome::Failed { .. }));
    assert!(run.error("augment").contains("allow_failures = 0.01"));
}
