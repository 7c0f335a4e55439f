//! LLM nodes through the binary. `kill -9` in the middle of an LLM stage: the next run
//! sends only what the killed one had not stored (at most the requests that were in
//! flight), and writes the table an uninterrupted run writes. `reasongen plan`
//! estimates what a node will spend, within a stated tolerance of what the run then
//! spends, and `status` sums it. The mock server lives in this test process; the
//! `reasongen` processes reach it over loopback.

mod common;

use common::Project;
use datasets::table::TableReader;
use llm::mock::{MockServer, Script};
use llm::tables::LedgerRow;
use pipeline::Store;
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

/// How far `plan`'s expected spend may be from what the run spends: answer lengths are
/// learned from the answers already in the memo (a sample of the same distribution),
/// input tokens are the text's bytes / 4.
const PLAN_TOLERANCE: f64 = 0.10;

fn prompts(rows: usize) -> String {
    (0..rows)
        .map(|i| {
            format!(
                "{{\"id\": \"p-{i:03}\", \"prompt\": \"{} green cones beside {} red cubes\", \"family\": \"test\"}}\n",
                i % 7 + 1,
                i + 2
            )
        })
        .collect()
}

#[test]
fn plan_estimates_the_spend_within_tolerance_and_status_sums_it() {
    let server = MockServer::start(Script {
        answer_tokens: Some((20, 120)),
        ..Script::default()
    })
    .unwrap();
    let p = Project::new();
    p.write(
        "r.toml",
        &format!(
            r#"
[recipe]
name = "spend"

[nodes.prompts]
kind = "source.table"
config = {{ path = "prompts.jsonl", schema = "rl_prompt" }}

[nodes.plan]
kind = "rationale.plan"
inputs = {{ prompts = "prompts" }}
config = {{ endpoint = {{ base_url = "{}", model = "mock-model" }}, sampling = {{ max_tokens = 300 }}, prices = {{ mock-model = {{ input_per_mtok = 25.0, output_per_mtok = 100.0 }} }} }}
"#,
            server.url()
        ),
    );
    p.write("prompts.jsonl", &prompts(40));
    let before = p.run(&["plan", "r.toml"]).ok();
    assert!(
        before.text().contains(
            "plan  unknown: its input `prompts` (node `prompts`) is not built yet: `reasongen run RECIPE --target prompts` builds it"
        ),
        "{}",
        before.text()
    );
    p.run(&["run", "r.toml"]).ok();

    // 160 rows, of which the first 40 are answered in the memo.
    p.write("prompts.jsonl", &prompts(160));
    p.run(&["run", "r.toml", "--target", "prompts"]).ok();
    let planned = p.run(&["plan", "r.toml", "--json"]).ok();
    let nodes: serde_json::Value = serde_json::from_str(&planned.stdout).unwrap();
    let e = &nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "plan")
        .unwrap()["estimate"];
    assert_eq!(
        (
            e["rows"].as_u64(),
            e["cached"].as_u64(),
            e["to_send"].as_u64()
        ),
        (Some(160), Some(40), Some(120)),
        "{e}"
    );
    assert!(
        e["basis"]
            .as_str()
            .unwrap()
            .contains("from the 40 answers in the memo"),
        "{e}"
    );
    let text = p.run(&["plan", "r.toml"]).ok();
    assert!(
        text.text()
            .contains("mock-model: 160 rows, 40 answered in the memo, 120 to send"),
        "{}",
        text.text()
    );
    assert!(text.text().contains("  total $"), "{}", text.text());

    let sent = server.counts().chat;
    p.run(&["run", "r.toml"]).ok();
    assert_eq!(server.counts().chat - sent, 120);
    let digest = Store::open(&p.store())
        .unwrap()
        .get_ref("spend", "plan")
        .unwrap()
        .unwrap()
        .digest;
    let ledger_dir = Store::open(&p.store())
        .unwrap()
        .object_dir(&digest)
        .join("ledger");
    let new: Vec<LedgerRow> = TableReader::open(&ledger_dir)
        .unwrap()
        .rows::<LedgerRow>()
        .unwrap()
        .flat_map(Result::unwrap)
        .filter(|r| r.id.as_str() >= "p-040")
        .collect();
    assert_eq!(new.len(), 120);
    let spent: f64 = new.iter().map(|r| r.cost_usd).sum();
    let tokens_in: u64 = new.iter().map(|r| r.input_tokens).sum();
    let tokens_out: u64 = new.iter().map(|r| r.output_tokens).sum();
    let near = |estimate: f64, actual: f64, what: &str| {
        assert!(
            (estimate - actual).abs() <= PLAN_TOLERANCE * actual,
            "{what}: estimated {estimate}, actual {actual}"
        )
    };
    near(e["cost_usd"]["expected"].as_f64().unwrap(), spent, "cost");
    near(
        e["input_tokens"]["expected"].as_f64().unwrap(),
        tokens_in as f64,
        "input tokens",
    );
    near(
        e["output_tokens"]["expected"].as_f64().unwrap(),
        tokens_out as f64,
        "output tokens",
    );
    let (low, high) = (
        e["cost_usd"]["low"].as_f64().unwrap(),
        e["cost_usd"]["high"].as_f64().unwrap(),
    );
    assert!(
        low <= spent && spent <= high,
        "{spent} outside {low}-{high}"
    );
    assert!(e["worst_usd"].as_f64().unwrap() >= spent);

    let status = p.run(&["status"]).ok();
    assert!(
        status.text().contains(&format!("LLM spend: ${spent:.4}")),
        "{}",
        status.text()
    );
}
