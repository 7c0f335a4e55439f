//! Running eval stages through the engine on tables a test makes: `test.prompts`
//! (node `prompts`) and `test.samples` (node `samples`) hand the engine the test's
//! `rl_prompt` and `eval_sample` rows; the nodes under test are appended as recipe text.

use datasets::table::{ShardOptions, ShardWriter};
use pipeline::console::{Console, ConsoleMode};
use pipeline::events::EventSink;
use pipeline::executor::{Capacity, Outcome, RunOptions};
use pipeline::recipe::{Recipe, validate};
use pipeline::{
    ArtifactType, Digest, InputSpec, Output, OutputDecl, Registry, Stage, StageContext, StageError,
    Store,
};
use schemas::Row;
use schemas::eval_sample::EvalSample;
use schemas::rl_prompt::RlPrompt;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct NoConfig {}

/// Write `rows` as the node's table.
pub fn write_rows<R: Row>(rows: &[R], ctx: &StageContext) -> Result<Output, StageError> {
    let mut w = ShardWriter::new(
        &ctx.out_dir,
        Arc::new(R::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    w.write(&schemas::to_batch(rows)?)?;
    let s = w.finish()?;
    Ok(Output {
        rows: Some(s.rows),
        schema: s.schema_id.clone(),
        meta: s.meta(),
    })
}

/// A node whose `rl_prompt` table is the test's.
pub struct Prompts(pub Vec<RlPrompt>);

impl Stage for Prompts {
    type Config = NoConfig;
    const KIND: &'static str = "test.prompts";
    const VERSION: u32 = 1;
    const DOC: &'static str = "the test's prompts";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("rl_prompt"));

    async fn run(&self, _: NoConfig, ctx: StageContext) -> Result<Output, StageError> {
        write_rows(&self.0, &ctx)
    }
}

/// A node whose `eval_sample` table is the test's.
pub struct Samples(pub Vec<EvalSample>);

impl Stage for Samples {
    type Config = NoConfig;
    const KIND: &'static str = "test.samples";
    const VERSION: u32 = 1;
    const DOC: &'static str = "the test's images";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("eval_sample"));

    async fn run(&self, _: NoConfig, ctx: StageContext) -> Result<Output, StageError> {
        write_rows(&self.0, &ctx)
    }
}

/// A finished run: its store and each node's outcome.
pub struct Ran {
    /// The store's folder, removed with the run.
    _dir: tempfile::TempDir,
    pub store: Store,
    pub outcomes: Vec<(String, Outcome)>,
}

impl Ran {
    /// The artifact node `name` made, or its error.
    pub fn output(&self, name: &str) -> Result<Digest, String> {
        match &self.outcomes.iter().find(|(n, _)| n == name) {
            Some((_, Outcome::Ran { digest, .. } | Outcome::Cached { digest })) => Ok(*digest),
            Some((_, Outcome::Failed { error })) => Err(error.clone()),
            other => Err(format!("{name}: {other:?}")),
        }
    }

    /// The folder of the artifact node `name` made (panics with its error).
    pub fn dir_of(&self, name: &str) -> PathBuf {
        let digest = self.output(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        self.store.object_dir(&digest)
    }
}

/// Run `test.prompts`, `test.samples` and the recipe text `nodes`, with the recipe's
/// folder `recipe_dir`; a run that cannot start gives its error.
pub fn run(
    prompts: Vec<RlPrompt>,
    samples: Vec<EvalSample>,
    nodes: &str,
    recipe_dir: &Path,
) -> Result<Ran, String> {
    let recipe = format!(
        "[recipe]\nname = \"eval\"\n[nodes.prompts]\nkind = \"test.prompts\"\n[nodes.samples]\nkind = \"test.samples\"\n{nodes}"
    );
    run_recipe(
        |registry| {
            registry.register(Prompts(prompts));
            registry.register(Samples(samples));
        },
        &recipe,
        recipe_dir,
    )
}

/// Run `recipe` (whole) with the eval stages and those `stages` registers.
pub fn run_recipe(
    stages: impl FnOnce(&mut Registry),
    recipe: &str,
    recipe_dir: &Path,
) -> Result<Ran, String> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let mut registry = Registry::new();
    eval::register(&mut registry);
    stages(&mut registry);
    let graph = validate(
        Recipe::parse(&recipe_dir.join("r.toml"), recipe.to_string()).map_err(|e| e.to_string())?,
        &registry,
    )
    .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let summary = rt
        .block_on(pipeline::executor::run(
            Arc::new(graph),
            store.clone(),
            pipeline::executor::new_run_id(),
            RunOptions {
                capacity: Capacity {
                    threads: 2,
                    gpus: 0,
                    llm_slots: 64,
                },
                targets: vec![],
                force: Default::default(),
                budget_usd: None,
            },
            EventSink::to_file(&dir.path().join("events.jsonl"), vec![]).unwrap(),
            Console::new(ConsoleMode::Quiet),
            CancellationToken::new(),
        ))
        .map_err(|e| format!("{e:#}"))?;
    Ok(Ran {
        _dir: dir,
        store,
        outcomes: summary.outcomes,
    })
}
