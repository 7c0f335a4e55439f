//! Incremental runs: what re-runs after which change, early cut-off, targets, failures,
//! panics, cancellation, resources and the item-level memo.

mod support;

use pipeline::events::Event;
use pipeline::executor::Outcome;
use pipeline::plan::{PlanState, plan};
use std::collections::BTreeSet;
use support::*;
use tokio_util::sync::CancellationToken;

fn chain(text: &str, note: &str, suffix: &str) -> String {
    format!(
        r#"
[nodes.a]
kind = "test.source"
config = {{ text = "{text}", note = "{note}" }}

[nodes.u]
kind = "test.upper"
inputs = {{ text = "a" }}
config = {{ suffix = "{suffix}" }}

[nodes.other]
kind = "test.source"
config = {{ text = "unrelated" }}
"#
    )
}

fn plan_of(
    store: &pipeline::Store,
    src: &str,
    registry: &pipeline::Registry,
) -> Vec<(String, PlanState, Vec<String>)> {
    let g = graph(src, registry);
    let all: BTreeSet<usize> = (0..g.nodes.len()).collect();
    plan(&g, store, &all, &BTreeSet::new())
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.state, p.reasons))
        .collect()
}

fn state<'a>(
    p: &'a [(String, PlanState, Vec<String>)],
    node: &str,
) -> &'a (String, PlanState, Vec<String>) {
    p.iter().find(|x| x.0 == node).unwrap()
}

#[test]
fn a_second_run_is_all_fresh_and_the_plan_agrees() {
    let (_d, store) = store();
    let src = chain("hi", "", "");
    let first = run(&store, &src);
    assert_eq!(first.ran_nodes(), vec!["a", "other", "u"]);
    let p = plan_of(&store, &src, &registry());
    assert!(
        p.iter().all(|x| matches!(x.1, PlanState::Fresh { .. })),
        "{p:?}"
    );
    let second = run(&store, &src);
    assert!(second.ran_nodes().is_empty());
    assert!(second.cached("a") && second.cached("u") && second.cached("other"));
}

#[test]
fn a_config_change_reruns_the_node_and_what_reads_it() {
    let (_d, store) = store();
    run(&store, &chain("hi", "", ""));
    let changed = chain("ho", "", "");
    let p = plan_of(&store, &changed, &registry());
    assert_eq!(state(&p, "a").1, PlanState::Stale);
    assert_eq!(
        state(&p, "a").2,
        vec![r#"config key `text` changed: "hi" → "ho""#]
    );
    assert_eq!(state(&p, "u").1, PlanState::Pending);
    assert!(matches!(state(&p, "other").1, PlanState::Fresh { .. }));
    let r = run(&store, &changed);
    assert_eq!(r.ran_nodes(), vec!["a", "u"]);
    // A downstream config change re-runs only downstream.
    let r = run(&store, &chain("ho", "", "!"));
    assert_eq!(r.ran_nodes(), vec!["u"]);
}

#[test]
fn identical_content_cuts_off_early() {
    let (_d, store) = store();
    run(&store, &chain("hi", "v1", ""));
    // `note` changes the key but not the bytes written.
    let src = chain("hi", "v2", "");
    let p = plan_of(&store, &src, &registry());
    assert_eq!(
        state(&p, "a").2,
        vec![r#"config key `note` changed: "v1" → "v2""#]
    );
    let r = run(&store, &src);
    assert_eq!(r.ran_nodes(), vec!["a"]);
    assert!(matches!(
        r.outcome("a"),
        Outcome::Ran {
            unchanged: true,
            ..
        }
    ));
    assert!(
        r.cached("u"),
        "u must stay fresh: its input's content did not change"
    );
}

#[test]
fn a_stage_version_bump_reruns_with_the_reason() {
    let (_d, store) = store();
    let src = chain("hi", "", "");
    run(&store, &src);
    let p = plan_of(&store, &src, &registry_v2());
    assert_eq!(
        state(&p, "a").2,
        vec!["stage version changed: test.source v1 → v2"]
    );
    assert_eq!(state(&p, "other").1, PlanState::Stale);
    let r = run_with(&store, &src, &registry_v2(), options(vec![], vec![]));
    assert_eq!(r.ran_nodes(), vec!["a", "other"]);
    assert!(r.cached("u"), "same bytes from v2: u cut off");
}

#[test]
fn an_input_change_is_named() {
    let (_d, store) = store();
    run(&store, &chain("hi", "", ""));
    run(&store, &chain("ho", "", ""));
    // Back to "hi": a and u are both cached from the first run (the store keeps keys).
    let r = run(&store, &chain("hi", "", ""));
    assert!(r.ran_nodes().is_empty(), "{:?}", r.ran_nodes());
    // u's plan reason names the changed input when its key is unknown.
    let src = chain("new", "", "");
    let g = graph(&src, &registry());
    run_with(
        &store,
        &src,
        &registry(),
        options(vec![g.index("a").unwrap()], vec![]),
    );
    let p = plan_of(&store, &src, &registry());
    let (_, st, reasons) = state(&p, "u");
    assert_eq!(*st, PlanState::Stale);
    assert!(
        reasons[0].starts_with("input `text` changed: "),
        "{reasons:?}"
    );
}

#[test]
fn target_runs_only_what_it_needs_and_force_reruns() {
    let (_d, store) = store();
    let src = chain("hi", "", "");
    let g = graph(&src, &registry());
    let r = run_with(
        &store,
        &src,
        &registry(),
        options(vec![g.index("u").unwrap()], vec![]),
    );
    assert_eq!(r.ran_nodes(), vec!["a", "u"]);
    assert_eq!(
        r.summary.outcomes.len(),
        2,
        "`other` is not part of the target"
    );
    let r = run_with(
        &store,
        &src,
        &registry(),
        options(vec![], vec![g.index("a").unwrap()]),
    );
    assert_eq!(r.ran_nodes(), vec!["a", "other"]);
    assert!(r.cached("u"), "forced a reproduced its bytes: u cut off");
}

#[test]
fn a_failure_skips_dependents_and_unrelated_branches_finish() {
    let (dir, store) = store();
    let marker = dir.path().join("ok");
    let src = format!(
        r#"
[nodes.a]
kind = "test.source"
config = {{ text = "x", fail_unless = "{}" }}
[nodes.u]
kind = "test.upper"
inputs = {{ text = "a" }}
[nodes.v]
kind = "test.upper"
inputs = {{ text = "u" }}
[nodes.b]
kind = "test.source"
config = {{ text = "y", sleep_ms = 100 }}
[nodes.w]
kind = "test.upper"
inputs = {{ text = "b" }}
"#,
        marker.display()
    );
    let r = run(&store, &src);
    assert_eq!(r.summary.status, pipeline::events::RunStatus::Failed);
    assert!(matches!(r.outcome("a"), Outcome::Failed { error } if error.contains("told to fail")));
    assert!(
        matches!(r.outcome("u"), Outcome::Skipped { reason } if reason == "upstream `a` failed")
    );
    assert!(matches!(r.outcome("v"), Outcome::Skipped { .. }));
    assert!(r.ran("b") && r.ran("w"));
    assert!(store.get_ref("test", "a").unwrap().is_none());
    // Nothing half-written is visible: no artifact holds `partial.txt`.
    assert!(
        !tree(&store.root().join("objects"))
            .keys()
            .any(|k| k.ends_with("partial.txt"))
    );
    std::fs::write(&marker, "").unwrap();
    let r = run(&store, &src);
    assert_eq!(
        r.ran_nodes(),
        vec!["a", "u", "v"],
        "the next run redoes only what failed"
    );
}

#[test]
fn a_panicking_stage_publishes_nothing_and_only_it_reruns() {
    let (dir, store) = store();
    let marker = dir.path().join("calm");
    let src = format!(
        r#"
[nodes.a]
kind = "test.source"
config = {{ text = "x", panic_unless = "{}" }}
[nodes.u]
kind = "test.upper"
inputs = {{ text = "a" }}
[nodes.b]
kind = "test.source"
config = {{ text = "y" }}
"#,
        marker.display()
    );
    let r = run(&store, &src);
    assert!(
        matches!(r.outcome("a"), Outcome::Failed { error } if error.contains("panicked: test.source was told to panic")),
        "{:?}",
        r.outcome("a")
    );
    assert!(r.ran("b"));
    let objects = tree(&store.root().join("objects"));
    assert!(
        !objects.keys().any(|k| k.ends_with("partial.txt")),
        "{objects:?}"
    );
    assert!(store.get_ref("test", "a").unwrap().is_none());
    assert!(
        tree(&store.root().join("tmp")).is_empty(),
        "the run's tmp folder is removed"
    );
    std::fs::write(&marker, "").unwrap();
    let r = run(&store, &src);
    assert_eq!(r.ran_nodes(), vec!["a", "u"]);
    assert!(r.cached("b"));
}

#[test]
fn cancellation_publishes_nothing() {
    let (_d, store) = store();
    let src = r#"
[nodes.slow]
kind = "test.source"
config = { text = "x", sleep_ms = 20000 }
[nodes.after]
kind = "test.upper"
inputs = { text = "slow" }
[nodes.quick]
kind = "test.source"
config = { text = "q" }
"#;
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(400));
        c.cancel();
    });
    let t = std::time::Instant::now();
    let r = run_cancellable(&store, src, &registry(), options(vec![], vec![]), cancel);
    assert!(
        t.elapsed().as_secs() < 10,
        "cancellation must not wait for the stage"
    );
    assert_eq!(r.summary.status, pipeline::events::RunStatus::Cancelled);
    assert_eq!(r.outcome("slow"), &Outcome::Cancelled);
    assert_eq!(r.outcome("after"), &Outcome::Cancelled);
    assert!(r.ran("quick"));
    assert!(store.get_ref("test", "slow").unwrap().is_none());
    assert_eq!(
        store.objects().unwrap().len(),
        1,
        "only `quick` was published"
    );
}

fn intervals(r: &Run) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for e in &r.events {
        match &e.event {
            Event::NodeStarted { node, .. } => out.push((node.clone(), e.ts_ms, u64::MAX)),
            Event::NodeFinished { node, .. } => {
                out.iter_mut().find(|x| &x.0 == node).unwrap().2 = e.ts_ms;
            }
            _ => {}
        }
    }
    out
}

#[test]
fn declared_threads_limit_what_runs_at_once() {
    let nodes = |threads: u32| {
        format!(
            r#"
[nodes.p]
kind = "test.source"
config = {{ text = "p", sleep_ms = 300, threads = {threads} }}
[nodes.q]
kind = "test.source"
config = {{ text = "q", sleep_ms = 300, threads = {threads} }}
"#
        )
    };
    let overlap = |r: &Run| {
        let iv = intervals(r);
        assert_eq!(iv.len(), 2);
        iv[0].1 < iv[1].2 && iv[1].1 < iv[0].2
    };
    let (_d, store) = store();
    // Capacity is 2 threads: two 2-thread nodes must take turns...
    assert!(!overlap(&run(&store, &nodes(2))));
    // ...and two 1-thread nodes run together.
    let (_d2, store2) = support::store();
    assert!(overlap(&run(&store2, &nodes(1))));
}

#[test]
fn the_memo_resumes_item_by_item_across_crashes_and_edits() {
    let (_d, store) = store();
    let items: Vec<String> = (0..10).map(|i| format!("\"item{i}\"")).collect();
    let recipe = |items: &[String], panic_after: Option<usize>| {
        let p = panic_after
            .map(|n| format!(", panic_after = {n}"))
            .unwrap_or_default();
        format!(
            "[nodes.m]\nkind = \"test.memo\"\nconfig = {{ items = [{}]{p} }}\n",
            items.join(", ")
        )
    };
    let r = run(&store, &recipe(&items, Some(4)));
    assert!(matches!(r.outcome("m"), Outcome::Failed { .. }));
    let new_items = |r: &Run| {
        r.events.iter().find_map(|e| match &e.event {
            Event::NodeFinished { counters, .. } => Some(counters["new_items"]),
            _ => None,
        })
    };
    // The crash kept the 4 answered items: only 6 are new.
    let r = run(&store, &recipe(&items, None));
    assert_eq!(new_items(&r), Some(6));
    // Adding two rows sends only those two.
    let mut more = items.clone();
    more.push("\"item10\"".into());
    more.push("\"item11\"".into());
    let r = run(&store, &recipe(&more, None));
    assert_eq!(new_items(&r), Some(2));
    let memo_hits = r.events.iter().find_map(|e| match &e.event {
        Event::NodeFinished { counters, .. } => counters.get("memo_hits").copied(),
        _ => None,
    });
    assert_eq!(memo_hits, Some(10));
}
