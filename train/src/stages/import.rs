//! `model.import`: a Janus-Pro model folder as users have it (a release such as
//! deepseek-ai/Janus-Pro-7B, a ReasonGen-R1 SFT model, a folder `reasongen convert`
//! wrote) brought into the store as a `model` artifact, by content digest.
//!
//! Either key layout (DeepSeek's original, transformers'), and either weight format:
//! `pytorch_model.bin` or its shards with `pytorch_model.bin.index.json`,
//! `model.safetensors` or its shards with `model.safetensors.index.json`
//! ([`crate::janus::checkpoint::find_weights`]). The config, tokenizer and processor
//! files and the index are copied (they are small); the weight files are held, not
//! copied: hard links where the folder is on the store's filesystem, else references
//! checked by digest (`hold = "reference"` asks for references always; the engine's
//! store module says what each means). The artifact's files keep the folder's names,
//! so it loads as the folder does, and its digest follows from the bytes alone: the
//! same folder gives the same digest wherever it lies and however it is held.
//!
//! The folder is checked before anything is held: `config.json` must be a Janus-Pro
//! config, `tokenizer.json` must hold the special tokens, and the weights must be in
//! one of the layouts (their headers are read, not their data).

use crate::janus::checkpoint::{Checkpoint, find_weights};
use crate::janus::convert::SIDE_FILES;
use crate::janus::keys::Layout;
use crate::janus::text::TextTokenizer;
use crate::janus::{JanusConfig, JanusError};
use pipeline::store::{FileHasher, HeldAs, Hold};
use pipeline::{
    ArtifactKind, ArtifactType, Digest, InputSpec, Output, OutputDecl, ResultExt, Stage,
    StageContext, StageError,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Config of `model.import`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// The model folder, relative to the recipe's folder.
    pub path: String,
    /// How the weight files are held: `link` (a hard link where the filesystem allows
    /// it, else a reference) or `reference` (always a reference to the file).
    #[serde(default)]
    pub hold: Hold,
}

/// The files of a model folder that the artifact takes.
struct FolderFiles {
    /// Copied: config, tokenizer, processor files and the weights' index json.
    small: Vec<PathBuf>,
    /// Held: the weight files.
    weights: Vec<PathBuf>,
}

impl FolderFiles {
    /// The files of the model folder `dir`.
    fn of(dir: &Path) -> Result<Self, JanusError> {
        let (index, weights) = find_weights(dir)?;
        let mut small: Vec<PathBuf> = SIDE_FILES
            .iter()
            .map(|name| dir.join(name))
            .filter(|p| p.is_file())
            .collect();
        small.extend(index);
        small.sort();
        Ok(FolderFiles { small, weights })
    }

    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.small.iter().chain(&self.weights)
    }
}

/// A file's path in the folder `dir`, with forward slashes.
fn relative(dir: &Path, path: &Path) -> Result<String, StageError> {
    let rel = path.strip_prefix(dir).map_err(|_| {
        StageError::msg(format!(
            "{}: the index lists a weight file outside the model folder {}",
            path.display(),
            dir.display()
        ))
    })?;
    Ok(rel.to_string_lossy().replace('\\', "/"))
}

/// Check that `dir` holds a Janus-Pro model: its config, its tokenizer, and weights in
/// either layout. Returns the layout.
fn check_folder(dir: &Path) -> Result<Layout, JanusError> {
    JanusConfig::from_file(&dir.join("config.json"))?;
    TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
    Ok(Checkpoint::open(dir)?.layout())
}

pub struct ImportModel;

impl Stage for ImportModel {
    type Config = ImportConfig;
    const KIND: &'static str = "model.import";
    const VERSION: u32 = 1;
    const DOC: &'static str = "A Janus-Pro model folder as released (sharded .bin or safetensors, either layout) brought into the store by content digest; its weights hard-linked or referenced, never copied.";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Model));

    fn externals(
        config: &ImportConfig,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        let dir = pipeline::context::resolve_against(recipe_dir, &config.path);
        let taken = FolderFiles::of(&dir).map_err(StageError::msg)?;
        taken
            .all()
            .map(|p| {
                let label = format!(
                    "file {}/{}",
                    config.path.trim_end_matches('/'),
                    relative(&dir, p)?
                );
                Ok((label, files.digest(p).context(p.display())?))
            })
            .collect()
    }

    async fn run(&self, config: ImportConfig, ctx: StageContext) -> Result<Output, StageError> {
        tokio::task::spawn_blocking(move || import(&config, &ctx))
            .await
            .map_err(|e| StageError::msg(format!("model.import thread: {e}")))?
    }
}

fn import(config: &ImportConfig, ctx: &StageContext) -> Result<Output, StageError> {
    let dir = ctx.resolve(&config.path);
    let layout = check_folder(&dir).map_err(StageError::msg)?;
    let taken = FolderFiles::of(&dir).map_err(StageError::msg)?;
    for p in &taken.small {
        let to = ctx.out_dir.join(relative(&dir, p)?);
        std::fs::copy(p, &to).context(p.display())?;
    }
    let (mut bytes, mut links, mut references) = (0u64, 0u64, 0u64);
    for p in &taken.weights {
        let rel = relative(&dir, p)?;
        let held = ctx
            .hold(p, &rel, config.hold)
            .map_err(|e| e.context(format!("weight file {}", p.display())))?;
        if let Some(e) = &held.link_failed {
            ctx.log(format!(
                "{rel}: no hard link ({e}); held as a reference to {}",
                held.file.source.display()
            ));
        }
        match held.file.held_as {
            HeldAs::Link => links += 1,
            HeldAs::Reference => references += 1,
        }
        bytes += held.file.size;
    }
    ctx.count("weight_files", taken.weights.len() as u64);
    ctx.count("weight_bytes", bytes);
    ctx.count("hard_links", links);
    ctx.count("references", references);
    ctx.log(format!(
        "{}: {} weight files, {:.2} GB ({links} hard-linked, {references} referenced), {} small files copied",
        dir.display(),
        taken.weights.len(),
        bytes as f64 / 1e9,
        taken.small.len()
    ));
    Ok(Output {
        rows: None,
        schema: None,
        meta: serde_json::json!({
            "kind": "janus",
            "layout": match layout {
                Layout::Original => "original",
                Layout::Transformers => "transformers",
            },
            "weight_files": taken.weights.len(),
            "weight_bytes": bytes,
        }),
    })
}
