//! The item memo: adding rows sends only the new ones; editing a row sends only it;
//! editing the template sends what it changes and nothing of other nodes; a rerun
//! sends nothing and writes the same table; identical rows share one request and
//! each still ends as its own row; the key never depends on the API key.

mod llm_support;

use llm::mock::{Fault, MockServer, Rule, Script};
use llm_support::{Project, assert_partition, endpoint, plan_recipe, prompts};

#[test]
fn only_new_or_changed_requests_are_sent() {
    let server = MockServer::start(Script::default()).unwrap();
    let p = Project::new();
    let recipe = plan_recipe(&endpoint(&server.url()), "");
    p.write("prompts.jsonl", &prompts(20, |_| ""));
    let first = p.run(&recipe, &[]);
    assert_eq!(first.output("plan").len(), 20);
    assert_eq!(server.counts().chat, 20);

    // Five more rows: five requests.
    p.write("prompts.jsonl", &prompts(25, |_| ""));
    let more = p.run(&recipe, &[]);
    assert_eq!(more.output("plan").len(), 25);
    assert_eq!(server.counts().chat, 25);
    // The first twenty rows are the same rows as before.
    assert_eq!(more.output("plan")[..20], first.output("plan")[..]);

    // One row edited: one request.
    let edited = prompts(25, |i| if i == 3 { "on a table" } else { "" });
    p.write("prompts.jsonl", &edited);
    p.run(&recipe, &[]);
    assert_eq!(server.counts().chat, 26);

    // A forced rerun: nothing sent, the same table (same digest).
    let before = p.run(&recipe, &[]).digest("plan");
    let again = p.run(&recipe, &["plan"]);
    assert_eq!(server.counts().chat, 26);
    assert_eq!(again.digest("plan"), before);
    assert!(again.log().contains("25 from memo"), "{}", again.log());

    // Another template for a second node: its requests only.
    let other = format!(
        "{recipe}\n[nodes.plan2]\nkind = \"rationale.plan\"\ninputs = {{ prompts = \"prompts\" }}\n[nodes.plan2.config]\n{}\ntemplate = {{ version = 2, user = \"Draw: {{prompt}}\" }}\n",
        endpoint(&server.url())
    );
    let run = p.run(&other, &[]);
    assert_eq!(
        server.counts().chat,
        51,
        "plan2's 25 requests, none of plan's"
    );
    let rows = run.output("plan2");
    assert!(rows.iter().all(|r| r.provenance[0].template_version == 2));
    assert!(
        rows[0]
            .detailed_caption
            .contains("Draw: a photo of 1 red cubes")
    );
}

#[test]
fn identical_rows_share_one_request_and_each_ends_as_its_own_row() {
    let server = MockServer::start(Script {
        rules: vec![Rule::always(Fault::context_length()).when("TOO LONG")],
        ..Script::default()
    })
    .unwrap();
    let p = Project::new();
    // Rows 0-5 ask the same, rows 6-8 ask the same and fail for good, 9-11 differ.
    let prompt = |i: usize| match i {
        0..6 => "two red cubes".to_string(),
        6..9 => "TOO LONG".to_string(),
        _ => format!("{i} green cones"),
    };
    let ids: Vec<String> = (0..12).map(|i| format!("p-{i:03}")).collect();
    let jsonl: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::json!({"id": id, "prompt": prompt(i), "family": "test"}).to_string() + "\n"
        })
        .collect();
    p.write("prompts.jsonl", &jsonl);
    let config = format!(
        "{}\npolicy = {{ allow_failures = 0.5 }}",
        endpoint(&server.url())
    );
    let run = p.run(&plan_recipe(&config, ""), &[]);
    let output = run.output("plan");
    let failures = run.failures("plan");
    assert_partition(&ids, &output, &failures);
    assert_eq!(server.counts().chat, 5, "one request per distinct prompt");
    let failed: Vec<&str> = failures.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(failed, ["p-006", "p-007", "p-008"]);
    assert!(failures.iter().all(|f| f.reason == "context_length"));
    // The six identical rows carry the same answer and request key, each its own id.
    let same: Vec<_> = output.iter().filter(|r| r.id.as_str() < "p-006").collect();
    assert_eq!(same.len(), 6);
    assert!(
        same.iter()
            .all(|r| r.detailed_caption == same[0].detailed_caption
                && r.provenance[0].request_key == same[0].provenance[0].request_key)
    );
    assert_eq!(run.ledger("plan").len(), 12, "one ledger row per input row");
}

#[test]
fn the_api_key_is_not_part_of_the_request_key() {
    let server = MockServer::start(Script::default()).unwrap();
    let p = Project::new();
    p.write("prompts.jsonl", &prompts(5, |_| ""));
    let recipe = plan_recipe(
        &format!("{}\n", endpoint(&server.url())).replace(
            "model = \"mock-model\"",
            "model = \"mock-model\", api_key_env = \"RG_MEMO_TEST_ACCESS\"",
        ),
        "",
    );
    // SAFETY: this test binary sets this variable in this test only.
    unsafe { std::env::set_var("RG_MEMO_TEST_ACCESS", "first-key-123456") };
    let first = p.run(&recipe, &[]);
    assert_eq!(
        server.last_auth().as_deref(),
        Some("Bearer first-key-123456")
    );
    unsafe { std::env::set_var("RG_MEMO_TEST_ACCESS", "second-key-654321") };
    let second = p.run(&recipe, &["plan"]);
    assert_eq!(server.counts().chat, 5, "a new key re-sends nothing");
    assert_eq!(second.digest("plan"), first.digest("plan"));
}

#[test]
fn azure_style_keys_go_in_the_api_key_header_with_the_query() {
    let server = MockServer::start(Script {
        api_key: Some("azure-key-0123456789".into()),
        ..Script::default()
    })
    .unwrap();
    let p = Project::new();
    p.write("prompts.jsonl", &prompts(3, |_| ""));
    let config = endpoint(&server.url()).replace(
        "model = \"mock-model\"",
        "model = \"mock-model\", api_key_env = \"RG_MEMO_TEST_AZURE\", auth = \"api_key\", query = { api-version = \"2024-10-21\" }, headers = { x-ms-client = \"reasongen\" }",
    );
    // SAFETY: this test binary sets this variable in this test only.
    unsafe { std::env::set_var("RG_MEMO_TEST_AZURE", "azure-key-0123456789") };
    let run = p.run(&plan_recipe(&config, ""), &[]);
    assert_eq!(run.output("plan").len(), 3, "{}", run.log());
    assert_eq!(server.last_auth().as_deref(), Some("azure-key-0123456789"));
}
