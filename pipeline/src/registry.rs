//! The registry of stage kinds, and the type erasure that lets the engine hold nodes of
//! every kind in one graph.
//!
//! A [`Stage`] is generic over its config type; the engine works with
//! [`PreparedNode`]s: a stage together with its parsed, typed config, whose canonical
//! JSON form (defaults filled in) is what enters the run key.

use crate::artifact::ArtifactKind;
use crate::context::StageContext;
use crate::digest::Digest;
use crate::estimate::{EstimateContext, SpendEstimate};
use crate::stage::{
    ArtifactType, Bindings, InputSpec, Output, OutputDecl, Resources, Stage, StageError,
};
use crate::store::FileHasher;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A config value rejected by a stage's typed config.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// Dotted path of the offending key inside `config` (empty for the table itself).
    pub path: String,
    pub message: String,
}

/// What `reasongen stages` shows about a kind.
pub struct StageInfo {
    pub kind: &'static str,
    pub version: u32,
    pub doc: &'static str,
    pub inputs: &'static [InputSpec],
    pub output: OutputDecl,
    pub uses_seed: bool,
    /// JSON Schema of the config, generated from the config type.
    pub config_schema: Value,
}

/// A stage kind, with its config type erased.
pub trait DynStage: Send + Sync {
    fn info(&self) -> StageInfo;
    /// Parse and type-check a node's config.
    fn prepare(&self, config: &Value) -> Result<Arc<dyn PreparedNode>, ConfigError>;
}

/// A stage with a checked config: everything the engine needs to key and run a node.
pub trait PreparedNode: Send + Sync {
    fn kind(&self) -> &'static str;
    fn version(&self) -> u32;
    fn uses_seed(&self) -> bool;
    /// The typed config serialised back, defaults included.
    fn canonical_config(&self) -> &Value;
    fn inputs(&self) -> &'static [InputSpec];
    fn output(&self) -> ArtifactType;
    fn resources(&self) -> Resources;
    fn ranks(&self) -> u32;
    fn validate(&self, bindings: &Bindings) -> Result<(), String>;
    fn externals(
        &self,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError>;
    fn run(&self, ctx: StageContext) -> BoxFuture<Result<Output, StageError>>;
    fn spends(&self) -> bool;
    fn shardable(&self) -> bool;
    fn estimate(&self, ctx: &EstimateContext) -> Result<Option<SpendEstimate>, StageError>;
}

struct Prepared<S: Stage> {
    stage: Arc<S>,
    config: Arc<S::Config>,
    canonical: Value,
    output: ArtifactType,
}

impl<S: Stage> PreparedNode for Prepared<S> {
    fn kind(&self) -> &'static str {
        S::KIND
    }
    fn version(&self) -> u32 {
        S::VERSION
    }
    fn uses_seed(&self) -> bool {
        S::USES_SEED
    }
    fn canonical_config(&self) -> &Value {
        &self.canonical
    }
    fn inputs(&self) -> &'static [InputSpec] {
        S::INPUTS
    }
    fn output(&self) -> ArtifactType {
        self.output
    }
    fn resources(&self) -> Resources {
        S::resources(&self.config)
    }
    fn ranks(&self) -> u32 {
        S::ranks(&self.config).max(1)
    }
    fn validate(&self, bindings: &Bindings) -> Result<(), String> {
        S::validate(&self.config, bindings)
    }
    fn externals(
        &self,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        S::externals(&self.config, files, recipe_dir)
    }
    fn run(&self, ctx: StageContext) -> BoxFuture<Result<Output, StageError>> {
        let stage = self.stage.clone();
        // Configs are plain data; a clone per run keeps `Stage::run` free of lifetimes.
        let config: S::Config =
            serde_json::from_value(self.canonical.clone()).expect("canonical config re-parses");
        Box::pin(async move { stage.run(config, ctx).await })
    }
    fn spends(&self) -> bool {
        S::SPENDS
    }
    fn shardable(&self) -> bool {
        S::SHARDABLE
    }
    fn estimate(&self, ctx: &EstimateContext) -> Result<Option<SpendEstimate>, StageError> {
        S::estimate(&self.config, ctx)
    }
}

struct Erased<S: Stage>(Arc<S>);

impl<S: Stage> DynStage for Erased<S> {
    fn info(&self) -> StageInfo {
        StageInfo {
            kind: S::KIND,
            version: S::VERSION,
            doc: S::DOC,
            inputs: S::INPUTS,
            output: S::OUTPUT,
            uses_seed: S::USES_SEED,
            config_schema: schemars::schema_for!(S::Config).to_value(),
        }
    }

    fn prepare(&self, config: &Value) -> Result<Arc<dyn PreparedNode>, ConfigError> {
        let typed: S::Config = serde_path_to_error::deserialize(config).map_err(|e| {
            let path = e.path().to_string();
            ConfigError {
                path: if path == "." { String::new() } else { path },
                message: e.into_inner().to_string(),
            }
        })?;
        let canonical = serde_json::to_value(&typed).map_err(|e| ConfigError {
            path: String::new(),
            message: e.to_string(),
        })?;
        let output = match S::OUTPUT {
            OutputDecl::Fixed(ty) => ty,
            OutputDecl::FromConfig { key, default } => {
                let kind = match canonical.get(key) {
                    Some(v) => serde_json::from_value::<ArtifactKind>(v.clone()).map_err(|e| {
                        ConfigError {
                            path: key.to_string(),
                            message: e.to_string(),
                        }
                    })?,
                    None => default,
                };
                ArtifactType::of(kind)
            }
            OutputDecl::TableFromConfig { key } => {
                let name =
                    canonical
                        .get(key)
                        .and_then(|v| v.as_str())
                        .ok_or_else(|| ConfigError {
                            path: key.to_string(),
                            message: "must name a table schema".into(),
                        })?;
                ArtifactType::table(intern(name))
            }
        };
        Ok(Arc::new(Prepared::<S> {
            stage: self.0.clone(),
            config: Arc::new(typed),
            canonical,
            output,
        }))
    }
}

/// A schema name with a static lifetime (few and small: one per distinct name).
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// Every stage kind the binary knows, by kind name.
#[derive(Default, Clone)]
pub struct Registry {
    stages: BTreeMap<&'static str, Arc<dyn DynStage>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a stage kind. Registering a kind twice is a programming error.
    pub fn register<S: Stage>(&mut self, stage: S) {
        let previous = self
            .stages
            .insert(S::KIND, Arc::new(Erased(Arc::new(stage))));
        assert!(
            previous.is_none(),
            "stage kind {} registered twice",
            S::KIND
        );
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn DynStage>> {
        self.stages.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.stages.keys().copied()
    }

    pub fn infos(&self) -> Vec<StageInfo> {
        self.stages.values().map(|s| s.info()).collect()
    }
}
