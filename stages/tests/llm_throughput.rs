//! A quick measurement, not a test (ignored by default): `rationale.plan` over
//! `RG_BENCH_ROWS` prompts (20 000) at `RG_BENCH_CONCURRENCY` (256) against the mock
//! server with `RG_BENCH_LATENCY_MS` (0) of latency, the server in a separate process
//! (this test binary, started again), so that the CPU time measured is the stage's
//! alone: reading, templates and keys, scheduling, HTTP, validation, memo commits and
//! the tables.
//!
//! `cargo test --release -p stages --test llm_throughput -- --ignored --nocapture`

mod llm_support;

use llm::mock::{MockServer, Script};
use llm_support::{Project, plan_recipe, prompts};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU seconds of this process so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) start at `) `.
    let rest = &stat[stat.rfind(") ").unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    ticks / hz
}

/// Peak resident memory of this process, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The server side: started by [`plan_throughput`] in a child process.
#[test]
#[ignore]
fn serve_mock_for_benchmark() {
    if std::env::var("RG_MOCK_SERVE").is_err() {
        return;
    }
    let server = MockServer::start(Script {
        latency: Duration::from_millis(env_or("RG_BENCH_LATENCY_MS", 0)),
        ..Script::default()
    })
    .unwrap();
    println!("MOCK_URL={}", server.url());
    // Serve until the parent closes our standard input.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[test]
#[ignore]
fn plan_throughput() {
    let rows = env_or("RG_BENCH_ROWS", 20_000) as usize;
    let concurrency = env_or("RG_BENCH_CONCURRENCY", 256);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "serve_mock_for_benchmark",
            "--ignored",
            "--nocapture",
        ])
        .env("RG_MOCK_SERVE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Kept open until the server exits, so that its last lines have a reader.
    let mut server_out = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = server_out
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("MOCK_URL=").map(str::to_string))
        .expect("the server prints its URL");

    let p = Project::new();
    p.write("prompts.jsonl", &prompts(rows, |_| ""));
    let config = format!(
        r#"endpoint = {{ base_url = "{url}", model = "mock-model" }}
limits = {{ concurrency = {concurrency} }}
progress_secs = 1000"#
    );
    // The source table first, so that only the stage is measured.
    p.run(
        "[recipe]\nname = \"llm\"\n[nodes.prompts]\nkind = \"source.table\"\nconfig = { path = \"prompts.jsonl\", schema = \"rl_prompt\" }\n",
        &[],
    );
    let recipe = plan_recipe(&config, "");
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let run = p.run(&recipe, &[]);
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    assert_eq!(run.output("plan").len(), rows);
    drop(child.stdin.take());
    server_out.for_each(drop);
    let _ = child.wait();
    let latency = env_or("RG_BENCH_LATENCY_MS", 0);
    let ceiling = if latency > 0 {
        format!(
            ", {:.0}% of concurrency/latency ({:.0}/s)",
            100.0 * rows as f64 / wall / (concurrency as f64 * 1000.0 / latency as f64),
            concurrency as f64 * 1000.0 / latency as f64
        )
    } else {
        String::new()
    };
    println!(
        "rationale.plan: {rows} requests at concurrency {concurrency}, server latency {latency} ms: \
         {wall:.2} s, {:.0} requests/s{ceiling}; stage CPU {:.3} ms per request; peak RSS {:.0} MiB",
        rows as f64 / wall,
        cpu * 1000.0 / rows as f64,
        peak_rss_mib()
    );
}
