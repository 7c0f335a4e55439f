//! An API key read from a variable whose name does not look secret, sent to a server
//! that echoes it back in error bodies and in a 401, appears nowhere: not in the store
//! (tables, memo, manifests), not in the events or logs, not on the console.

mod common;

use common::Project;
use datasets::table::TableReader;
use llm::mock::{Fault, MockServer, Rule, Script};
use llm::tables::FailureRow;

const KEY: &str = "sk-planted-llm-5e1f0a9c3b7d2e84";
const WRONG: &str = "sk-wrong-llm-77aa00bb11cc22dd";

#[test]
fn a_planted_api_key_appears_nowhere() {
    let server = MockServer::start(Script {
        api_key: Some(KEY.into()),
        rules: vec![Rule::always(Fault::Status(
            400,
            format!(r#"{{"error":{{"message":"request ECHO refused for key {KEY}","type":"invalid_request_error"}}}}"#),
        ))
        .when("ECHO")],
        ..Script::default()
    })
    .unwrap();
    let p = Project::new();
    let prompts: String = (0..10)
        .map(|i| {
            let echo = if i < 2 { " ECHO" } else { "" };
            format!("{{\"id\": \"p-{i}\", \"prompt\": \"a cat{echo}\", \"family\": \"test\"}}\n")
        })
        .collect();
    p.write("prompts.jsonl", &prompts);
    let url = server.url();
    p.write(
        "r.toml",
        &format!(
            r#"
[recipe]
name = "secrets"

[nodes.prompts]
kind = "source.table"
config = {{ path = "prompts.jsonl", schema = "rl_prompt" }}

[nodes.plan]
kind = "rationale.plan"
inputs = {{ prompts = "prompts" }}
config = {{ endpoint = {{ base_url = "{url}", model = "m", api_key_env = "RG_LLM_ACCESS" }}, policy = {{ allow_failures = 0.5 }}, progress_secs = 0.05 }}

[nodes.wrong]
kind = "rationale.plan"
inputs = {{ prompts = "prompts" }}
config = {{ endpoint = {{ base_url = "{url}", model = "m", api_key_env = "RG_LLM_OTHER" }} }}
"#
        ),
    );
    let run = common::Run::from(
        p.cmd(&["run", "r.toml"])
            .env("RG_LLM_ACCESS", KEY)
            .env("RG_LLM_OTHER", WRONG)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, Some(1), "`wrong` fails: {}", run.text());
    // The keys were really sent, and the servers' echoes were really received...
    assert!(
        server
            .last_auth()
            .is_some_and(|a| a == format!("Bearer {KEY}") || a == format!("Bearer {WRONG}"))
    );
    assert!(
        run.text().contains("Incorrect API key provided: ***"),
        "{}",
        run.text()
    );
    let store = p.store();
    let failures_dir = std::fs::read_dir(store.join("objects"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|a| a.path().join("failures"))
        .find(|f| f.is_dir())
        .expect("plan published its failures table");
    let failures: Vec<FailureRow> = TableReader::open(&failures_dir)
        .unwrap()
        .rows::<FailureRow>()
        .unwrap()
        .flat_map(Result::unwrap)
        .collect();
    assert_eq!(failures.len(), 2);
    for f in &failures {
        assert!(f.message.contains("for key ***"), "{f:?}");
        assert!(
            f.raw.as_deref().is_some_and(|r| r.contains("for key ***")),
            "{f:?}"
        );
    }
    // ...but neither key is anywhere.
    for secret in [KEY, WRONG] {
        assert!(!run.text().contains(secret), "console: {}", run.text());
        for (path, text) in p.store_files() {
            assert!(!text.contains(secret), "{} holds a key", path.display());
        }
    }
    assert!(
        p.store_files()
            .iter()
            .any(|(path, _)| path.ends_with("events.jsonl")),
        "the events exist"
    );
}
