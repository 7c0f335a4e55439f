//! The `Stage` trait: what a kind of node declares and how it runs.
//!
//! A stage is a typed unit of work: a kind name, an explicit version (bump it when the
//! meaning of the output changes, and every cached result of the old version goes
//! stale), a typed config (serde with `deny_unknown_fields`, documented through
//! `schemars`), declared inputs and output, declared resources, and an async `run` that
//! writes one artifact into the folder its context gives it. The scheduler, the store
//! layout and the other nodes are none of a stage's business.

use crate::artifact::ArtifactKind;
use crate::context::StageContext;
use crate::digest::Digest;
use crate::estimate::{EstimateContext, SpendEstimate};
use crate::store::FileHasher;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::Path;

/// The type of an artifact: its kind and, for tables, the schema name it must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArtifactType {
    pub kind: ArtifactKind,
    /// Schema name (without version) that a table carries, if the stage fixes one.
    pub schema: Option<&'static str>,
}

impl ArtifactType {
    pub const fn of(kind: ArtifactKind) -> Self {
        ArtifactType { kind, schema: None }
    }

    pub const fn table(schema: &'static str) -> Self {
        ArtifactType {
            kind: ArtifactKind::Table,
            schema: Some(schema),
        }
    }
}

impl fmt::Display for ArtifactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.schema {
            Some(s) => write!(f, "{}<{}>", self.kind, s),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// How many artifacts an input takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly one node.
    One,
    /// Zero or one node.
    Optional,
    /// One or more nodes (a list in the recipe).
    Many,
}

/// An input a stage declares.
#[derive(Clone, Debug)]
pub struct InputSpec {
    /// The name used in the recipe's `inputs` table; `*` accepts any names, which the
    /// stage then checks in [`Stage::validate`].
    pub name: &'static str,
    /// Accepted artifact kinds; empty accepts any kind.
    pub kinds: &'static [ArtifactKind],
    /// Required table schema name, if any.
    pub schema: Option<&'static str>,
    pub arity: Arity,
    pub doc: &'static str,
}

impl InputSpec {
    /// Does an artifact of type `ty` fit this input?
    pub fn accepts(&self, ty: ArtifactType) -> bool {
        let kind_ok = self.kinds.is_empty() || self.kinds.contains(&ty.kind);
        let schema_ok = match (self.schema, ty.schema) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        };
        kind_ok && schema_ok
    }

    pub fn describe_kinds(&self) -> String {
        let kinds = if self.kinds.is_empty() {
            "any".to_string()
        } else {
            self.kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join("|")
        };
        match self.schema {
            Some(s) => format!("{kinds}<{s}>"),
            None => kinds,
        }
    }
}

/// Where a stage's output type comes from.
#[derive(Clone, Copy, Debug)]
pub enum OutputDecl {
    Fixed(ArtifactType),
    /// The config key `key` names the kind (as `output = "table"`), `default` if absent.
    FromConfig {
        key: &'static str,
        default: ArtifactKind,
    },
    /// A table whose schema the config key `key` names (as `schema = "rl_prompt"`).
    TableFromConfig {
        key: &'static str,
    },
}

/// Resources a node holds while it runs. The executor never runs nodes whose sum
/// exceeds what the machine was given (`--jobs`, `--gpus`, `--llm-slots`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    pub threads: u32,
    pub gpus: u32,
    pub llm_slots: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            threads: 1,
            gpus: 0,
            llm_slots: 0,
        }
    }
}

/// What a stage reports after writing its files into `ctx.out_dir`.
#[derive(Clone, Debug, Default)]
pub struct Output {
    pub rows: Option<u64>,
    /// Table schema as `name@version`.
    pub schema: Option<String>,
    /// Small facts that are part of the artifact's content (and so of its digest).
    pub meta: serde_json::Value,
}

/// A stage failure, with the message shown to the user. Any error type converts.
pub struct StageError {
    message: String,
    cancelled: bool,
}

impl StageError {
    pub fn msg(message: impl fmt::Display) -> Self {
        StageError {
            message: message.to_string(),
            cancelled: false,
        }
    }

    pub fn cancelled() -> Self {
        StageError {
            message: "cancelled".to_string(),
            cancelled: true,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    /// Prefix the message with what was being done.
    pub fn context(self, what: impl fmt::Display) -> Self {
        StageError {
            message: format!("{what}: {}", self.message),
            cancelled: self.cancelled,
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for StageError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(&format!(": {text}"));
            }
            source = s.source();
        }
        StageError::msg(message)
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Attach context to errors of any kind that convert into [`StageError`].
pub trait ResultExt<T> {
    fn context(self, what: impl fmt::Display) -> Result<T, StageError>;
}

impl<T, E: Into<StageError>> ResultExt<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T, StageError> {
        self.map_err(|e| e.into().context(what))
    }
}

/// Input bindings of a node as the stage sees them at validation: input name → node ids.
pub type Bindings = BTreeMap<String, Vec<String>>;

/// A kind of node. See the module documentation.
pub trait Stage: Send + Sync + 'static {
    /// The typed config: `#[serde(deny_unknown_fields)]`, documented field by field.
    type Config: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static;

    /// The kind name used in recipes, e.g. `table.filter`.
    const KIND: &'static str;
    /// Bumped whenever the same config and inputs would produce different content.
    const VERSION: u32;
    /// One line for `reasongen stages`.
    const DOC: &'static str;
    /// The declared inputs.
    const INPUTS: &'static [InputSpec];
    /// The declared output.
    const OUTPUT: OutputDecl;
    /// Whether the node's seed changes what the stage writes (then it enters the key).
    const USES_SEED: bool = false;
    /// Whether the stage spends money (then `reasongen plan` asks for its estimate).
    const SPENDS: bool = false;
    /// Whether the node's item work splits by item key: run with `ctx.shard` set, the
    /// stage fills the item memo for that shard's items only, and its output is
    /// discarded; run without, it finds them memoised (`pipeline::shard`).
    const SHARDABLE: bool = false;

    /// Resources one node of this config holds while running.
    fn resources(_config: &Self::Config) -> Resources {
        Resources::default()
    }

    /// Processes one run of the node is: its data-parallel ranks, each running the
    /// stage with the resources above, rank 0 alone publishing. A batch executor
    /// launches them (`srun`); in one process the stage sees a world of one.
    fn ranks(_config: &Self::Config) -> u32 {
        1
    }

    /// Checks that need more than the config's types (e.g. that placeholders name bound
    /// inputs). Runs before anything runs.
    fn validate(_config: &Self::Config, _bindings: &Bindings) -> Result<(), String> {
        Ok(())
    }

    /// Content digests of what the stage reads from outside the store (source files,
    /// programs), by label. They are part of the run key, computed before the run.
    fn externals(
        _config: &Self::Config,
        _files: &FileHasher,
        _recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        Ok(Vec::new())
    }

    /// What running the node would send and spend, from its built inputs, the memo and
    /// its last run (stages with `SPENDS`).
    fn estimate(
        _config: &Self::Config,
        _ctx: &EstimateContext,
    ) -> Result<Option<SpendEstimate>, StageError> {
        Ok(None)
    }

    /// Write the artifact's files into `ctx.out_dir`.
    fn run(
        &self,
        config: Self::Config,
        ctx: StageContext,
    ) -> impl Future<Output = Result<Output, StageError>> + Send;
}
