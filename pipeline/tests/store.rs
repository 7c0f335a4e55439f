//! The store: gc never removes what refs and keys reach; verify finds corruption and
//! `repair` makes the next run rebuild exactly what was lost; concurrent runs share
//! one store.

mod support;

use pipeline::artifact::{ArtifactKind, Lineage};
use pipeline::key::{ENGINE_KEY_VERSION, KeyInputs};
use pipeline::stage::Output;
use pipeline::store::{GcOptions, Problem};
use pipeline::{Digest, Store};
use proptest::prelude::*;
use std::collections::BTreeMap;
use support::*;

fn recipe(a: u8, b: u8) -> String {
    format!(
        r#"
[nodes.a]
kind = "test.source"
config = {{ text = "a{a}" }}
[nodes.u]
kind = "test.upper"
inputs = {{ text = "a" }}
[nodes.b]
kind = "test.source"
config = {{ text = "b{b}", times = 3 }}
"#
    )
}

/// An artifact with no key and no ref, as a crash between publish and key leaves.
fn orphan(store: &Store, n: u8) -> Digest {
    let dir = store.root().join("tmp").join(format!("orphan{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("x"), [n; 64]).unwrap();
    let key = KeyInputs {
        engine: ENGINE_KEY_VERSION,
        stage: "test.source".into(),
        stage_version: 1,
        config: serde_json::json!({"n": n}),
        inputs: BTreeMap::new(),
        externals: BTreeMap::new(),
        seed: None,
    };
    let lineage = Lineage {
        run_key: key.run_key(),
        key,
        recipe: "test".into(),
        node: "orphan".into(),
        run_id: "r".into(),
        started_ms: 0,
        duration_ms: 0,
        counters: BTreeMap::new(),
    };
    store
        .publish(&dir, ArtifactKind::Files, &Output::default(), lineage, &[])
        .unwrap()
        .digest
}

fn assert_reachable_intact(store: &Store) {
    for (_, rec) in store.keys().unwrap() {
        assert!(
            store.has_object(&rec.digest),
            "a key's artifact was removed"
        );
    }
    for (_, _, r) in store.refs().unwrap() {
        assert!(store.has_object(&r.digest), "a ref's artifact was removed");
    }
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]
    /// Whatever runs and crashes came before, gc keeps everything reachable and every
    /// run afterwards still finds its cached nodes.
    #[test]
    fn gc_never_removes_what_refs_or_keys_reach(
        steps in prop::collection::vec((0u8..3, 0u8..3, any::<bool>()), 1..5),
        refs_only in any::<bool>(),
    ) {
        let (_d, store) = store();
        let mut orphans = Vec::new();
        for (n, (a, b, crash)) in steps.iter().enumerate() {
            run(&store, &recipe(*a, *b));
            if *crash {
                orphans.push(orphan(&store, n as u8));
            }
        }
        let dry = store.gc(GcOptions { delete: false, refs_only }).unwrap();
        for o in &orphans {
            prop_assert!(dry.objects.iter().any(|(d, _)| d == o));
            prop_assert!(store.has_object(o), "a dry run deletes nothing");
        }
        let report = store.gc(GcOptions { delete: true, refs_only }).unwrap();
        prop_assert!(report.objects.len() >= orphans.len());
        for o in &orphans {
            prop_assert!(!store.has_object(o));
        }
        assert_reachable_intact(&store);
        // The last recipe is entirely fresh after gc.
        let (a, b, _) = steps.last().unwrap();
        let again = run(&store, &recipe(*a, *b));
        prop_assert!(again.ran_nodes().is_empty());
        // Without --refs-only, every earlier variant is still cached too.
        if !refs_only {
            for (a, b, _) in &steps {
                prop_assert!(run(&store, &recipe(*a, *b)).ran_nodes().is_empty());
            }
        }
    }
}

#[test]
fn verify_finds_a_flipped_byte_and_repair_rebuilds_only_that() {
    let (_d, store) = store();
    run(&store, &recipe(0, 0));
    assert!(store.verify().unwrap().problems.is_empty());
    let b = store.get_ref("test", "b").unwrap().unwrap().digest;
    let file = store.object_dir(&b).join("data.txt");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1] ^= 0x01;
    let mut perms = std::fs::metadata(&file).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&file, perms).unwrap();
    std::fs::write(&file, &bytes).unwrap();

    let report = store.verify().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    match &report.problems[0] {
        Problem::CorruptObject {
            digest,
            file,
            message,
        } => {
            assert_eq!(*digest, b);
            assert_eq!(file.as_deref(), Some("data.txt"));
            assert!(message.starts_with("sha256 "), "{message}");
        }
        p => panic!("unexpected {p:?}"),
    }
    let text = report.problems[0].to_string();
    assert!(
        text.contains(&b.to_hex()) && text.contains("data.txt"),
        "{text}"
    );

    store.repair(&report.problems).unwrap();
    assert!(store.verify().unwrap().problems.is_empty());
    let r = run(&store, &recipe(0, 0));
    assert_eq!(r.ran_nodes(), vec!["b"]);
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn verify_finds_missing_and_extra_files() {
    let (_d, store) = store();
    run(&store, &recipe(1, 1));
    let a = store.get_ref("test", "a").unwrap().unwrap().digest;
    let dir = store.object_dir(&a);
    std::fs::remove_file(dir.join("data.txt")).unwrap();
    std::fs::write(dir.join("stray.bin"), b"?").unwrap();
    let problems: Vec<String> = store
        .verify()
        .unwrap()
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(
        problems.iter().any(|p| p.contains("data.txt: unreadable")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("stray.bin: file not listed")),
        "{problems:?}"
    );
}

#[test]
fn two_concurrent_runs_compute_each_node_once() {
    let (_d, store) = store();
    let src = r#"
[nodes.slow]
kind = "test.source"
config = { text = "s", sleep_ms = 600 }
[nodes.u]
kind = "test.upper"
inputs = { text = "slow" }
"#;
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| run(&store, src))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ran: usize = runs.iter().map(|r| r.ran_nodes().len()).sum();
    assert_eq!(
        ran, 2,
        "each node computed once across both runs: {:?} {:?}",
        runs[0].summary.outcomes, runs[1].summary.outcomes
    );
    for r in &runs {
        assert_eq!(
            r.summary.status,
            pipeline::events::RunStatus::Succeeded,
            "{:?}",
            r.summary.outcomes
        );
    }
    assert!(store.verify().unwrap().problems.is_empty());
    assert_eq!(store.objects().unwrap().len(), 2);
}
