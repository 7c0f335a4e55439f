//! `kill -9` in the middle of an LLM stage: the next run sends only what the killed one
//! had not stored (at most the requests that were in flight), and writes the table an
//! uninterrupted run writes. The mock server lives in this test process; the
//! `reasongen` processes reach it over loopback.

mod common;

use common::Project;
use pipeline::Store;
use stages::llm::mock::{MockServer, Script};
use std::process::Stdio;
use std::time::{Duration, Instant};

const ROWS: usize = 200;
const CONCURRENCY: u64 = 8;

fn setup(p: &Project, url: &str) {
    let prompts: String = (0..ROWS)
        .map(|i| {
            format!(
                "{{\"id\": \"p-{i:03}\", \"prompt\": \"{} blue spheres on a table\", \"family\": \"test\"}}\n",
                i + 1
            )
        })
        .collect();
    p.write("prompts.jsonl", &prompts);
    p.write(
        "r.toml",
        &format!(
            r#"
[recipe]
name = "crash"

[nodes.prompts]
kind = "source.table"
config = {{ path = "prompts.jsonl", schema = "rl_prompt" }}

[nodes.plan]
kind = "rationale.plan"
inputs = {{ prompts = "prompts" }}
config = {{ endpoint = {{ base_url = "{url}", model = "mock-model" }}, limits = {{ concurrency = {CONCURRENCY} }} }}
"#
        ),
    );
}

fn table_digest(p: &Project) -> pipeline::Digest {
    Store::open(&p.store())
        .unwrap()
        .get_ref("crash", "plan")
        .unwrap()
        .expect("plan has a ref")
        .digest
}

#[test]
fn kill_9_mid_stage_resends_at_most_the_requests_in_flight() {
    let server = MockServer::start(Script {
        latency: Duration::from_millis(10),
        ..Script::default()
    })
    .unwrap();
    let p = Project::new();
    setup(&p, &server.url());
    let mut child = p
        .cmd(&["run", "r.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while server.counts().chat < ROWS as u64 / 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run sent too little"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = server.counts().chat;
    assert!(before < ROWS as u64, "killed mid-stage ({before} requests)");

    let again = p.run(&["run", "r.toml"]).ok();
    assert!(again.text().contains("plan: done"), "{}", again.text());
    let total = server.counts().chat;
    assert!(
        total <= ROWS as u64 + CONCURRENCY,
        "{total} requests for {ROWS} rows at concurrency {CONCURRENCY}"
    );

    // An uninterrupted run against the same server writes the same table.
    let q = Project::new();
    setup(&q, &server.url());
    q.run(&["run", "r.toml"]).ok();
    assert_eq!(table_digest(&q), table_digest(&p));
}
