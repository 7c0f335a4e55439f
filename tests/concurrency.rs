//! Two processes on one store: nothing is computed twice, nothing is corrupted, and gc
//! waits for running runs.

mod common;

use common::Project;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn recipe(p: &Project) -> String {
    let log = p.path("executions.log");
    format!(
        r#"
[nodes.slow]
kind = "command"
config = {{ argv = ["sh", "-c", "echo slow >> {log}; sleep 1; echo done > {{out}}/slow.txt"] }}

[nodes.next]
kind = "command"
inputs = {{ s = "slow" }}
config = {{ argv = ["sh", "-c", "echo next >> {log}; cat {{input.s}}/slow.txt > {{out}}/next.txt"] }}
"#,
        log = log.display()
    )
}

#[test]
fn two_runs_at_once_compute_each_node_once() {
    let p = Project::new();
    p.write("r.toml", &recipe(&p));
    let children: Vec<_> = (0..2)
        .map(|_| {
            p.cmd(&["run", "r.toml"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let log = std::fs::read_to_string(p.path("executions.log")).unwrap();
    assert_eq!(log.lines().filter(|l| *l == "slow").count(), 1, "{log}");
    assert_eq!(log.lines().filter(|l| *l == "next").count(), 1, "{log}");
    let waited = outs.iter().any(|o| {
        String::from_utf8_lossy(&o.stderr).contains("another process is computing this node")
    });
    assert!(waited, "one run must have waited for the other");
    assert!(p.run(&["verify"]).ok().stdout.contains(": 0 problems"));
}

#[test]
fn gc_waits_for_a_running_run() {
    let p = Project::new();
    p.write("r.toml", &recipe(&p));
    let run = p
        .cmd(&["run", "r.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the run take the store.
    let start = Instant::now();
    while !p.path("executions.log").exists() {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    let gc = p.run(&["gc", "--delete"]).ok();
    assert!(
        gc.stderr.contains("waiting: runs are using the store"),
        "{}",
        gc.text()
    );
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success());
    // gc ran after the run: the run's artifacts are all there and sound.
    assert!(p.run(&["verify"]).ok().stdout.contains(": 0 problems"));
    let again = p.run(&["run", "r.toml"]).ok();
    assert!(again.text().contains("0 ran, 2 fresh"), "{}", again.text());
}
