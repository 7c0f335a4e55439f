//! Crashes and interruptions: a process killed at any point leaves no visible artifact,
//! and the next run redoes only what was lost.

mod common;

use common::Project;
use std::time::{Duration, Instant};

const RECIPE: &str = r#"
[nodes.first]
kind = "command"
config = { argv = ["sh", "-c", "echo one > {out}/one.txt"] }

[nodes.second]
kind = "command"
inputs = { x = "first" }
config = { argv = ["sh", "-c", "cat {input.x}/one.txt > {out}/two.txt; echo two >> {out}/two.txt"] }

[nodes.side]
kind = "command"
config = { argv = ["sh", "-c", "echo side > {out}/side.txt"] }
"#;

fn refs(p: &Project) -> Vec<String> {
    let dir = p.store().join("refs").join("r");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .trim_end_matches(".json")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Kill the process at `point` while it handles `second`, then check and recover.
fn crash_at(point: &str) {
    let p = Project::new();
    p.write("r.toml", RECIPE);
    let crashed = p
        .cmd(&["run", "r.toml"])
        .env("REASONGEN_FAULT", format!("{point}:second"))
        .output()
        .unwrap();
    assert!(
        !crashed.status.success(),
        "the fault at {point} must kill the run"
    );
    assert!(
        crashed.status.code().is_none(),
        "killed by a signal, not an exit"
    );
    assert!(
        !refs(&p).contains(&"second".to_string()),
        "{point}: no ref for the crashed node"
    );
    // Nothing the crashed node wrote is reachable: no key maps to an artifact with two.txt
    // unless publication completed, and verify finds the store sound.
    let verify = p.run(&["verify"]).ok();
    assert!(verify.stdout.contains(": 0 problems"), "{}", verify.stdout);

    let again = p.run(&["run", "r.toml"]).ok();
    assert!(again.text().contains("second: done"), "{}", again.text());
    assert!(again.text().contains("first: fresh"), "{}", again.text());
    assert!(
        !again.text().contains("first: done"),
        "only the lost node re-runs:\n{}",
        again.text()
    );
    assert_eq!(refs(&p), vec!["first", "second", "side"]);
    let verify = p.run(&["verify"]).ok();
    assert!(verify.stdout.contains(": 0 problems"), "{}", verify.stdout);
}

#[test]
fn crash_after_the_stage_ran_before_publishing() {
    crash_at("node.after_run");
}

#[test]
fn crash_just_before_the_rename_into_the_store() {
    crash_at("publish.before_rename");
}

#[test]
fn crash_after_publishing_before_the_key_is_recorded() {
    crash_at("publish.before_key");
}

#[test]
fn kill_9_from_inside_a_running_node() {
    let p = Project::new();
    let marker = p.path("killed-once");
    p.write(
        "r.toml",
        &format!(
            r#"
[nodes.ok]
kind = "command"
config = {{ argv = ["sh", "-c", "echo ok > {{out}}/ok.txt"] }}

[nodes.victim]
kind = "command"
inputs = {{ x = "ok" }}
config = {{ argv = ["sh", "-c", "echo half > {{out}}/half.txt; if [ ! -e {m} ]; then touch {m}; kill -9 $PPID; sleep 5; fi; cat {{input.x}}/ok.txt > {{out}}/whole.txt"] }}
"#,
            m = marker.display()
        ),
    );
    let r = p.run(&["run", "r.toml"]);
    assert_eq!(r.code, None, "reasongen was killed: {}", r.text());
    assert!(!refs(&p).contains(&"victim".to_string()));
    let objects: Vec<_> = p
        .store_files()
        .into_iter()
        .filter(|(path, _)| path.to_string_lossy().contains("/objects/"))
        .collect();
    assert!(
        !objects.iter().any(|(path, _)| path.ends_with("half.txt")),
        "a half-written artifact is visible"
    );
    // The leftovers sit in tmp/, invisible, and gc reports them.
    let gc = p.run(&["gc"]).ok();
    assert!(gc.stdout.contains("would remove leftover"), "{}", gc.stdout);

    let again = p.run(&["run", "r.toml"]).ok();
    assert!(again.text().contains("ok: fresh"), "{}", again.text());
    assert!(again.text().contains("victim: done"), "{}", again.text());
    let gc = p.run(&["gc", "--delete"]).ok();
    assert!(gc.stdout.contains("removed 0 artifacts"), "{}", gc.stdout);
    assert!(p.run(&["verify"]).ok().stdout.contains(": 0 problems"));
}

#[test]
fn ctrl_c_cancels_cleanly() {
    let p = Project::new();
    p.write(
        "r.toml",
        r#"
[nodes.slow]
kind = "command"
config = { argv = ["sh", "-c", "echo partial > {out}/partial.txt; exec sleep 30"] }
[nodes.quick]
kind = "command"
config = { argv = ["sh", "-c", "echo q > {out}/q.txt"] }
"#,
    );
    let child = p
        .cmd(&["run", "r.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until `slow` has started.
    let start = Instant::now();
    loop {
        let started = p.store_files().iter().any(|(path, text)| {
            path.ends_with("events.jsonl") && text.contains("\"node_started\",\"node\":\"slow\"")
        });
        if started {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "slow never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "cancellation took {:?}",
        t.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("cancelled"), "{err}");
    assert!(!refs(&p).contains(&"slow".to_string()));
    assert!(
        !p.store_files()
            .iter()
            .any(|(path, _)| path.ends_with("partial.txt")),
        "nothing of the cancelled node remains, not even in tmp/"
    );
    let status = p.run(&["status"]).ok();
    assert!(status.stdout.contains("cancelled in"), "{}", status.stdout);
}
