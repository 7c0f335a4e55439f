//! The batch executor against the mock server's Batch API: batches of the configured
//! size, the same table as the online executor, expired and failed items submitted
//! again, and a restarted run that resumes the batches it had submitted instead of
//! paying for them twice.

mod llm_support;

use llm::mock::{BatchScript, Fault, MockServer, Rule, Script};
use llm_support::{Project, assert_partition, endpoint, ids, plan_recipe, prompts};
use pipeline::executor::Outcome;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn batch_config(url: &str, batch: &str, extra: &str) -> String {
    format!(
        "{}\nexecutor = \"batch\"\nbatch = {{ poll_secs = 0.05, {batch} }}\n{extra}",
        endpoint(url)
    )
}

#[test]
fn batches_give_the_table_the_online_executor_gives() {
    let server = MockServer::start(Script::default()).unwrap();
    let p = Project::new();
    p.write("prompts.jsonl", &prompts(30, |_| ""));
    let run = p.run(
        &plan_recipe(&batch_config(&server.url(), "max_requests = 12", ""), ""),
        &[],
    );
    let batched = run.output("plan");
    assert_eq!(batched.len(), 30, "{}", run.log());
    let c = server.counts();
    assert_eq!((c.files, c.batches, c.batch_lines, c.chat), (3, 3, 30, 0));
    assert!(run.log().contains("submitted batch"), "{}", run.log());

    // Online, against the same server, from a fresh store: the same rows.
    let q = Project::new();
    q.write("prompts.jsonl", &prompts(30, |_| ""));
    let online = q.run(&plan_recipe(&endpoint(&server.url()), ""), &[]);
    assert_eq!(online.output("plan"), batched);
    assert_eq!(online.digest("plan"), run.digest("plan"));
}

#[test]
fn expired_failed_and_invalid_items_are_submitted_again() {
    let server = MockServer::start(Script {
        rules: vec![Rule::always(Fault::Truncated).when("TRUNC").times(1)],
        batch: BatchScript {
            expire_when: Some("EXPIRE".into()),
            fail_first: 1,
            ..BatchScript::default()
        },
        ..Script::default()
    })
    .unwrap();
    let p = Project::new();
    let marker = |i: usize| match i {
        0 | 1 => "EXPIRE",
        2 => "TRUNC",
        _ => "",
    };
    p.write("prompts.jsonl", &prompts(10, marker));
    let run = p.run(
        &plan_recipe(&batch_config(&server.url(), "max_rounds = 4", ""), ""),
        &[],
    );
    assert_eq!(run.output("plan").len(), 10, "{}", run.log());
    // 1: failed whole; 2: all 10 again, 2 expire and 1 is cut; 3: those 3 answered.
    let c = server.counts();
    assert_eq!(c.batches, 3, "{}", run.log());
    assert_eq!(c.batch_lines, 13);
    assert!(run.log().contains("ended failed"), "{}", run.log());
}

#[test]
fn items_that_keep_failing_stop_after_max_rounds() {
    let server = MockServer::start(Script {
        rules: vec![Rule::always(Fault::Truncated).when("TRUNC")],
        ..Script::default()
    })
    .unwrap();
    let p = Project::new();
    p.write(
        "prompts.jsonl",
        &prompts(6, |i| if i == 4 { "TRUNC" } else { "" }),
    );
    let run = p.run(
        &plan_recipe(
            &batch_config(
                &server.url(),
                "max_rounds = 3",
                "policy = { allow_failures = 0.5 }",
            ),
            "",
        ),
        &[],
    );
    let failures = run.failures("plan");
    assert_partition(&ids(6), &run.output("plan"), &failures);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].id, "p-004");
    assert_eq!(failures[0].reason, "truncated");
    assert_eq!(failures[0].attempts, 3);
    assert_eq!(server.counts().batches, 3);
}

#[test]
fn a_restarted_run_resumes_its_submitted_batches() {
    let server = MockServer::start(Script {
        batch: BatchScript {
            latency: Duration::from_millis(1500),
            ..BatchScript::default()
        },
        ..Script::default()
    })
    .unwrap();
    let p = Project::new();
    p.write("prompts.jsonl", &prompts(8, |_| ""));
    let recipe = plan_recipe(&batch_config(&server.url(), "", ""), "");

    // Stop the first run once its batch is submitted and being polled.
    let cancel = CancellationToken::new();
    let interrupted = std::thread::scope(|s| {
        let run = s.spawn(|| p.run_cancellable(&recipe, &[], cancel.clone()));
        let started = Instant::now();
        while server.counts().polls == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no batch polled"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        cancel.cancel();
        run.join().unwrap()
    });
    assert_eq!(*interrupted.outcome("plan"), Outcome::Cancelled);
    assert_eq!(server.counts().batches, 1);

    let resumed = p.run(&recipe, &[]);
    assert_eq!(resumed.output("plan").len(), 8, "{}", resumed.log());
    let c = server.counts();
    assert_eq!(
        (c.files, c.batches, c.batch_lines),
        (1, 1, 8),
        "nothing submitted twice"
    );
    assert!(
        resumed.log().contains("resuming batch"),
        "{}",
        resumed.log()
    );
}
