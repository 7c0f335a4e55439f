//! Test stages and helpers shared by the engine's integration tests.
#![allow(dead_code)]

use pipeline::console::{Console, ConsoleMode};
use pipeline::events::{EventRecord, EventSink, read_events};
use pipeline::executor::{Capacity, Outcome, RunOptions, RunSummary};
use pipeline::recipe::{Graph, Recipe, validate};
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Registry, Resources, Stage,
    StageContext, StageError, Store,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// `test.source`: writes `text` (and `rows` lines) into `out/data.txt`.
pub struct Source<const V: u32>;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The text to write.
    pub text: String,
    /// Repeat the text this many times.
    #[serde(default = "one")]
    pub times: u32,
    /// Ignored by the output (changes the key, not the content).
    #[serde(default)]
    pub note: String,
    /// Panic instead of writing, unless this file exists.
    #[serde(default)]
    pub panic_unless: Option<String>,
    /// Fail instead of writing, unless this file exists.
    #[serde(default)]
    pub fail_unless: Option<String>,
    /// Milliseconds to sleep before writing (cancellation tests).
    #[serde(default)]
    pub sleep_ms: u64,
    /// Threads to reserve.
    #[serde(default = "one")]
    pub threads: u32,
}

fn one() -> u32 {
    1
}

impl<const V: u32> Stage for Source<V> {
    type Config = SourceConfig;
    const KIND: &'static str = "test.source";
    const VERSION: u32 = V;
    const DOC: &'static str = "writes text";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Files));

    fn resources(c: &SourceConfig) -> Resources {
        Resources {
            threads: c.threads,
            ..Resources::default()
        }
    }

    async fn run(&self, c: SourceConfig, ctx: StageContext) -> Result<Output, StageError> {
        if c.sleep_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(c.sleep_ms)).await;
        }
        if c.panic_unless
            .as_ref()
            .is_some_and(|p| !Path::new(p).exists())
        {
            std::fs::write(ctx.out_dir.join("partial.txt"), "half")?;
            panic!("test.source was told to panic");
        }
        if c.fail_unless
            .as_ref()
            .is_some_and(|p| !Path::new(p).exists())
        {
            std::fs::write(ctx.out_dir.join("partial.txt"), "half")?;
            return Err(StageError::msg("test.source was told to fail"));
        }
        // Write part of the output first, so a failure leaves a half-written folder.
        std::fs::write(ctx.out_dir.join("partial.txt"), "x")?;
        let text = c.text.repeat(c.times as usize);
        std::fs::write(ctx.out_dir.join("data.txt"), &text)?;
        std::fs::remove_file(ctx.out_dir.join("partial.txt"))?;
        Ok(Output {
            rows: Some(c.times as u64),
            ..Output::default()
        })
    }
}

/// `test.upper`: upper-cases its input's `data.txt`; `suffix` is appended.
pub struct Upper;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpperConfig {
    #[serde(default)]
    pub suffix: String,
}

impl Stage for Upper {
    type Config = UpperConfig;
    const KIND: &'static str = "test.upper";
    const VERSION: u32 = 1;
    const DOC: &'static str = "upper-cases text";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "text",
        kinds: &[ArtifactKind::Files],
        schema: None,
        arity: Arity::One,
        doc: "the text",
    }];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Files));

    async fn run(&self, c: UpperConfig, ctx: StageContext) -> Result<Output, StageError> {
        let input = ctx.input("text")?;
        let text = std::fs::read_to_string(input.dir.join("data.txt"))?;
        std::fs::write(
            ctx.out_dir.join("data.txt"),
            format!("{}{}", text.to_uppercase(), c.suffix),
        )?;
        Ok(Output::default())
    }
}

/// `test.table`: claims to write a table (for artifact-type checks).
pub struct TableMaker;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

impl Stage for TableMaker {
    type Config = Empty;
    const KIND: &'static str = "test.table";
    const VERSION: u32 = 1;
    const DOC: &'static str = "an empty table";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Table));

    async fn run(&self, _: Empty, _ctx: StageContext) -> Result<Output, StageError> {
        Ok(Output {
            rows: Some(0),
            ..Output::default()
        })
    }
}

/// `test.memo`: for each of `items`, looks the item up in the memo and stores it if
/// missing; panics after `panic_after` new items (if set). Counts new items.
pub struct MemoWork;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoConfig {
    pub items: Vec<String>,
    #[serde(default)]
    pub panic_after: Option<usize>,
}

impl Stage for MemoWork {
    type Config = MemoConfig;
    const KIND: &'static str = "test.memo";
    const VERSION: u32 = 1;
    const DOC: &'static str = "memoised items";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Files));

    async fn run(&self, c: MemoConfig, ctx: StageContext) -> Result<Output, StageError> {
        let memo = ctx.memo("test.items")?;
        let mut answers = Vec::new();
        let mut fresh = 0;
        for item in &c.items {
            let key = pipeline::Digest::of_json(item);
            let answer = match memo.get(&key)? {
                Some(v) => String::from_utf8(v).unwrap(),
                None => {
                    if c.panic_after == Some(fresh) {
                        panic!("crash after {fresh} new items");
                    }
                    fresh += 1;
                    let a = format!("answer to {item}");
                    memo.put(&key, a.as_bytes())?;
                    a
                }
            };
            answers.push(answer);
        }
        ctx.count("new_items", fresh as u64);
        std::fs::write(ctx.out_dir.join("answers.txt"), answers.join("\n"))?;
        Ok(Output::default())
    }
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(Source::<1>);
    r.register(Upper);
    r.register(TableMaker);
    r.register(MemoWork);
    r
}

/// The same stages, with `test.source` at version 2.
pub fn registry_v2() -> Registry {
    let mut r = Registry::new();
    r.register(Source::<2>);
    r.register(Upper);
    r.register(TableMaker);
    r.register(MemoWork);
    r
}

pub fn graph(src: &str, registry: &Registry) -> Graph {
    let recipe = Recipe::parse(Path::new("test.toml"), src.to_string()).expect("recipe parses");
    validate(recipe, registry).unwrap_or_else(|e| panic!("recipe invalid: {e}"))
}

pub struct Run {
    pub summary: RunSummary,
    pub events: Vec<EventRecord>,
}

impl Run {
    pub fn outcome(&self, node: &str) -> &Outcome {
        &self
            .summary
            .outcomes
            .iter()
            .find(|(n, _)| n == node)
            .unwrap_or_else(|| panic!("no node {node}"))
            .1
    }

    pub fn ran(&self, node: &str) -> bool {
        matches!(self.outcome(node), Outcome::Ran { .. })
    }

    pub fn cached(&self, node: &str) -> bool {
        matches!(self.outcome(node), Outcome::Cached { .. })
    }

    /// Nodes that ran, sorted.
    pub fn ran_nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .summary
            .outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Ran { .. }))
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }
}

pub fn options(targets: Vec<usize>, force: Vec<usize>) -> RunOptions {
    RunOptions {
        capacity: Capacity {
            threads: 2,
            gpus: 0,
            llm_slots: 8,
        },
        targets,
        force: force.into_iter().collect(),
        budget_usd: None,
    }
}

/// Run a recipe on a store with the given registry.
pub fn run_with(store: &Store, src: &str, registry: &Registry, opts: RunOptions) -> Run {
    run_cancellable(store, src, registry, opts, CancellationToken::new())
}

pub fn run_cancellable(
    store: &Store,
    src: &str,
    registry: &Registry,
    opts: RunOptions,
    cancel: CancellationToken,
) -> Run {
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
        .block_on(pipeline::executor::run(
            graph,
            store.clone(),
            run_id,
            opts,
            events,
            Console::new(ConsoleMode::Quiet),
            cancel,
        ))
        .unwrap();
    Run {
        summary,
        events: read_events(&events_path).unwrap(),
    }
}

pub fn run(store: &Store, src: &str) -> Run {
    run_with(store, src, &registry(), options(vec![], vec![]))
}

pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

/// Every file under `dir` (relative paths), for "nothing visible" checks.
pub fn tree(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, e.metadata().map_or(0, |m| m.len()));
            }
        }
    }
    out
}
