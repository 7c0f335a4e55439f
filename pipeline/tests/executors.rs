//! The executor seam: nodes run through another runner than the local one (here, the
//! worker side of a remote node, `exec_node`, called in process from the node's
//! description in the store) give the local run's artifacts; a description whose key
//! no longer matches is refused; a rank other than 0 runs without the node lock and
//! publishes nothing; GPU nodes get their own device ordinals.

mod support;

use pipeline::console::{Console, ConsoleMode};
use pipeline::events::{Event, EventSink, read_events};
use pipeline::executor::node::{NodeSpec, Rank, execute};
use pipeline::executor::remote::exec_node;
use pipeline::executor::{Capacity, NodeJob, NodeRunner, Outcome, RunEnv, RunOptions};
use pipeline::plan::key_inputs;
use pipeline::registry::BoxFuture;
use pipeline::store::NodeLock;
use pipeline::{
    ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Registry, Resources, Stage,
    StageContext, StageError, Store,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use support::*;
use tokio_util::sync::CancellationToken;

/// Runs each node as `reasongen exec-node` would: from its description in the store,
/// through a registry of its own.
struct InProcessRemote;

impl NodeRunner for InProcessRemote {
    fn run_node(&self, env: Arc<RunEnv>, job: NodeJob) -> BoxFuture<Result<Outcome, StageError>> {
        Box::pin(async move {
            job.spec.save(env.store(), env.run_id())?;
            exec_node(
                env.store().clone(),
                &registry(),
                env.run_id(),
                &job.spec.node,
                None,
                Console::new(ConsoleMode::Quiet),
                CancellationToken::new(),
            )
            .await
        })
    }
}

const CHAIN: &str = r#"
[nodes.a]
kind = "test.source"
config = { text = "hi", times = 3 }

[nodes.u]
kind = "test.upper"
inputs = { text = "a" }
config = { suffix = "!" }

[nodes.m]
kind = "test.memo"
config = { items = ["x", "y"] }
"#;

fn run_through(
    runner: Arc<dyn NodeRunner>,
    store: &Store,
    src: &str,
    registry: &Registry,
    capacity: Capacity,
) -> (
    pipeline::executor::RunSummary,
    Vec<pipeline::events::EventRecord>,
) {
    let graph = Arc::new(graph(src, registry));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run_id = pipeline::executor::new_run_id();
    let events_path = store.run_dir(&run_id).join("events.jsonl");
    let events = EventSink::to_file(&events_path, vec![]).unwrap();
    let summary = rt
        .block_on(pipeline::executor::run_with(
            runner,
            graph,
            store.clone(),
            run_id,
            RunOptions {
                capacity,
                targets: vec![],
                force: Default::default(),
                budget_usd: None,
            },
            events,
            Console::new(ConsoleMode::Quiet),
            CancellationToken::new(),
        ))
        .unwrap();
    (summary, read_events(&events_path).unwrap())
}

fn digests(store: &Store, nodes: &[&str]) -> BTreeMap<String, pipeline::Digest> {
    nodes
        .iter()
        .map(|n| {
            let r = store.get_ref("test", n).unwrap().expect("ref");
            (n.to_string(), r.digest)
        })
        .collect()
}

const CPUS: Capacity = Capacity {
    threads: 2,
    gpus: 0,
    llm_slots: 8,
};

#[test]
fn nodes_run_from_their_stored_description_match_the_local_run() {
    let (_a, local) = store();
    let (_b, remote) = store();
    run(&local, CHAIN);
    let (summary, _) = run_through(Arc::new(InProcessRemote), &remote, CHAIN, &registry(), CPUS);
    for (node, o) in &summary.outcomes {
        assert!(matches!(o, Outcome::Ran { .. }), "{node}: {o:?}");
    }
    let nodes = ["a", "u", "m"];
    assert_eq!(digests(&local, &nodes), digests(&remote, &nodes));
    // Each node's description is in the run's folder, and says what its key says.
    let spec = NodeSpec::load(&remote, &summary.run_id, "u").unwrap();
    let key = remote.key(&spec.run_key()).unwrap().expect("recorded key");
    assert_eq!(key.lineage.key, spec.key);
    assert_eq!(spec.producers["text"], vec!["a".to_string()]);
    // A second run finds everything in the store: nothing goes to the runner.
    let (again, _) = run_through(Arc::new(InProcessRemote), &remote, CHAIN, &registry(), CPUS);
    assert!(
        again
            .outcomes
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Cached { .. }))
    );
}

#[test]
fn a_description_whose_key_does_not_match_this_binary_is_refused() {
    let (_d, store) = store();
    let (summary, _) = run_through(Arc::new(InProcessRemote), &store, CHAIN, &registry(), CPUS);
    let mut spec = NodeSpec::load(&store, &summary.run_id, "a").unwrap();
    // The controller's binary had another version of the stage.
    spec.key.stage_version = 7;
    spec.force = true;
    spec.save(&store, &summary.run_id).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(exec_node(
            store.clone(),
            &registry(),
            &summary.run_id,
            "a",
            None,
            Console::new(ConsoleMode::Quiet),
            CancellationToken::new(),
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("node `a`") && err.contains("stage version changed: test.source v7 → v1"),
        "{err}"
    );
    let missing = rt
        .block_on(exec_node(
            store.clone(),
            &registry(),
            &summary.run_id,
            "nope",
            None,
            Console::new(ConsoleMode::Quiet),
            CancellationToken::new(),
        ))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("node `nope`"), "{missing}");
}

#[test]
fn a_shard_of_a_node_whose_stage_does_not_shard_is_refused() {
    let (_d, store) = store();
    let (summary, _) = run_through(Arc::new(InProcessRemote), &store, CHAIN, &registry(), CPUS);
    let shard = pipeline::shard::Shard::new(1, 3).unwrap();
    let err = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(exec_node(
            store.clone(),
            &registry(),
            &summary.run_id,
            "a",
            Some(shard),
            Console::new(ConsoleMode::Quiet),
            CancellationToken::new(),
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("node `a`") && err.contains("does not split its work into shards"),
        "{err}"
    );
}

/// `test.gpu`: holds `gpus` GPUs for `hold_ms` and writes the ordinals it was given.
struct Gpu;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GpuConfig {
    gpus: u32,
    hold_ms: u64,
}

impl Stage for Gpu {
    type Config = GpuConfig;
    const KIND: &'static str = "test.gpu";
    const VERSION: u32 = 1;
    const DOC: &'static str = "records its devices";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Files));

    fn resources(c: &GpuConfig) -> Resources {
        Resources {
            gpus: c.gpus,
            ..Resources::default()
        }
    }

    async fn run(&self, c: GpuConfig, ctx: StageContext) -> Result<Output, StageError> {
        tokio::time::sleep(std::time::Duration::from_millis(c.hold_ms)).await;
        std::fs::write(
            ctx.out_dir.join("devices.json"),
            serde_json::to_vec(&ctx.devices)?,
        )?;
        Ok(Output::default())
    }
}

const TWO_GPU_NODES: &str = r#"
[nodes.g1]
kind = "test.gpu"
config = { gpus = 1, hold_ms = 400 }

[nodes.g2]
kind = "test.gpu"
config = { gpus = 1, hold_ms = 401 }

[nodes.cpu]
kind = "test.source"
config = { text = "no gpu" }
"#;

/// Per node: the ordinals in its `node_started` event, and its start and end times.
type DeviceEvents = BTreeMap<String, (Vec<u32>, u64, u64)>;

fn device_events(events: &[pipeline::events::EventRecord]) -> DeviceEvents {
    let mut out = DeviceEvents::new();
    for e in events {
        match &e.event {
            Event::NodeStarted { node, devices, .. } => {
                out.insert(node.clone(), (devices.clone(), e.ts_ms, u64::MAX));
            }
            Event::NodeFinished { node, .. } => out.get_mut(node).unwrap().2 = e.ts_ms,
            _ => {}
        }
    }
    out
}

fn gpu_run(gpus: u32) -> (DeviceEvents, Store, tempfile::TempDir) {
    let mut registry = registry();
    registry.register(Gpu);
    let (dir, store) = store();
    let capacity = Capacity {
        threads: 4,
        gpus,
        llm_slots: 8,
    };
    let (summary, events) = run_through(
        Arc::new(pipeline::executor::LocalRunner),
        &store,
        TWO_GPU_NODES,
        &registry,
        capacity,
    );
    assert!(summary.failed().next().is_none(), "{:?}", summary.outcomes);
    (device_events(&events), store, dir)
}

fn written_devices(store: &Store, node: &str) -> Vec<u32> {
    let r = store.get_ref("test", node).unwrap().unwrap();
    serde_json::from_slice(
        &std::fs::read(store.object_dir(&r.digest).join("devices.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn two_gpu_nodes_under_two_gpus_run_at_once_on_different_devices() {
    let (by_node, store, _d) = gpu_run(2);
    let (d1, s1, e1) = by_node["g1"].clone();
    let (d2, s2, e2) = by_node["g2"].clone();
    assert_eq!((d1.len(), d2.len()), (1, 1), "{by_node:?}");
    assert_ne!(d1, d2, "both nodes were given the same GPU");
    assert!(
        s1 < e2 && s2 < e1,
        "the two GPU nodes did not overlap: {by_node:?}"
    );
    // The stage saw what the event records; the CPU node was given none.
    assert_eq!(written_devices(&store, "g1"), d1);
    assert_eq!(written_devices(&store, "g2"), d2);
    assert!(by_node["cpu"].0.is_empty());
}

#[test]
fn two_gpu_nodes_under_one_gpu_take_turns_on_it() {
    let (by_node, _store, _d) = gpu_run(1);
    let (d1, s1, e1) = by_node["g1"].clone();
    let (d2, s2, e2) = by_node["g2"].clone();
    assert_eq!((d1, d2), (vec![0], vec![0]));
    assert!(
        e1 <= s2 || e2 <= s1,
        "two nodes held the only GPU at once: {by_node:?}"
    );
}

/// Runs every node as rank `.0` of a data-parallel node.
struct AsRank(u32);

impl NodeRunner for AsRank {
    fn run_node(&self, env: Arc<RunEnv>, job: NodeJob) -> BoxFuture<Result<Outcome, StageError>> {
        let rank = Rank::Follower(self.0);
        Box::pin(async move {
            let (threads, devices) = (job.granted.threads, job.devices.clone());
            execute(
                &env,
                &job.spec,
                job.prepared.as_ref(),
                threads,
                devices,
                rank,
            )
            .await
        })
    }
}

#[test]
fn a_rank_other_than_0_runs_beside_rank_0_and_publishes_nothing() {
    let (_d, store) = store();
    let src = r#"
[nodes.a]
kind = "test.source"
config = { text = "hi", times = 3 }
"#;
    // Rank 0 holds the node lock while it runs: rank 1 must not wait for it.
    let g = graph(src, &registry());
    let files = store.file_hasher().unwrap();
    let key = key_inputs(&g, 0, BTreeMap::new(), &files).unwrap();
    let _rank0 = NodeLock::try_acquire(&store, &key.run_key())
        .unwrap()
        .expect("the lock is free");
    let (summary, events) = run_through(Arc::new(AsRank(1)), &store, src, &registry(), CPUS);
    match &summary.outcomes[0].1 {
        Outcome::Skipped { reason } => assert!(reason.contains("rank 1"), "{reason}"),
        other => panic!("rank 1 ended as {other:?}"),
    }
    // It ran the stage, and left no artifact, key or ref.
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.event, Event::NodeStarted { node, .. } if node == "a"))
    );
    assert!(store.lookup(&key.run_key()).unwrap().is_none());
    assert!(store.get_ref("test", "a").unwrap().is_none());
    assert!(store.objects().unwrap().is_empty());
}
