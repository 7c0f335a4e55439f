//! Artifacts: the immutable output of one node run, and the manifest that describes it.
//!
//! An artifact is a folder of files plus `manifest.json`. The manifest has two parts:
//! `content` (kind, schema, rows, every file's sha256 and size, stage metadata) whose
//! canonical JSON digest *is* the artifact's identity, and `lineage` (which stage,
//! config and inputs made it, timings, counters), which is kept beside the content but
//! does not enter the digest, so that a re-run that reproduces the same files yields
//! the same digest (early cut-off).

use crate::digest::Digest;
use crate::key::KeyInputs;
use crate::store::HeldFile;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What an artifact holds. Stages declare the kind they write and the kinds they read.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// Parquet shards of one schema.
    Table,
    /// A folder of files with no further structure (e.g. what a command wrote).
    Files,
    /// Model weights with their config and tokenizer.
    Model,
    /// A training checkpoint: model, optimiser state, step and RNG.
    Checkpoint,
    /// Metrics, plots and pages about something else.
    Report,
    /// An exported dataset folder, ready to publish.
    Release,
}

impl ArtifactKind {
    pub const ALL: [ArtifactKind; 6] = [
        ArtifactKind::Table,
        ArtifactKind::Files,
        ArtifactKind::Model,
        ArtifactKind::Checkpoint,
        ArtifactKind::Report,
        ArtifactKind::Release,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ArtifactKind::Table => "table",
            ArtifactKind::Files => "files",
            ArtifactKind::Model => "model",
            ArtifactKind::Checkpoint => "checkpoint",
            ArtifactKind::Report => "report",
            ArtifactKind::Release => "release",
        }
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One file of an artifact, relative to the artifact folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: Digest,
    pub size: u64,
}

/// The part of a manifest that is the artifact's identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub kind: ArtifactKind,
    /// Schema id and version of a table (`name@version`), when the stage declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Row count of a table, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Every file, sorted by path.
    pub files: Vec<FileEntry>,
    /// Small stage-defined facts about the content (columns, metrics, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
}

impl Content {
    /// The content digest: the artifact's identity.
    pub fn digest(&self) -> Digest {
        Digest::of_json(self)
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// How an artifact was made: kept for `show`, never part of the digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// Everything the run key is the hash of.
    pub key: KeyInputs,
    pub run_key: Digest,
    pub recipe: String,
    pub node: String,
    pub run_id: String,
    /// Unix milliseconds.
    pub started_ms: u64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

/// `manifest.json` of an artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub digest: Digest,
    pub content: Content,
    pub lineage: Lineage,
    /// The files held as links or references to files outside the store
    /// ([`crate::store::HeldFile`]): how they are held is not content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldFile>,
}
