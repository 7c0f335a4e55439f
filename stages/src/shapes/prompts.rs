//! `shapes.prompts`: a GenEval-style prompt set over the shapes world, for RL or
//! evaluation: the training split, or the held-out compositional split (the
//! compositions of the `held_out` preset, which no training prompt or scene contains).

use super::held_out::HeldOutPreset;
use datasets::shapes::{Split, TaskCounts, prompt_set};
use datasets::table::{ShardOptions, ShardWriter};
use pipeline::{ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext, StageError};
use schemars::JsonSchema;
use schemas::Row;
use schemas::rl_prompt::RlPrompt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhichSplit {
    Train,
    HeldOut,
    All,
}

/// Config of `shapes.prompts`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// Which prompts: `train`, `held_out` or `all`.
    pub split: WhichSplit,
    /// Prompts drawn per task before the split is applied (all of a task's prompts
    /// when it has fewer).
    #[serde(default = "default_per_task")]
    pub per_task: usize,
    #[serde(default)]
    pub seed: u64,
    /// The compositions kept out of training (`standard`, `bindings` or `none`).
    #[serde(default, skip_serializing_if = "HeldOutPreset::is_default")]
    pub held_out: HeldOutPreset,
}

fn default_per_task() -> usize {
    100
}

pub struct ShapesPrompts;

impl Stage for ShapesPrompts {
    type Config = PromptsConfig;
    const KIND: &'static str = "shapes.prompts";
    const VERSION: u32 = 2;
    const DOC: &'static str = "GenEval-style prompts over the shapes world, training or held-out split, with their metadata records.";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("rl_prompt"));

    async fn run(&self, config: PromptsConfig, ctx: StageContext) -> Result<Output, StageError> {
        let rows: Vec<RlPrompt> = prompt_set(
            config.seed,
            &TaskCounts::uniform(config.per_task),
            &config.held_out.held_out(),
        )
        .into_iter()
        .filter(|p| match config.split {
            WhichSplit::Train => p.split == Split::Train,
            WhichSplit::HeldOut => p.split == Split::HeldOut,
            WhichSplit::All => true,
        })
        .enumerate()
        .map(|(i, p)| RlPrompt {
            id: format!("shapes-{i:05}"),
            prompt: p.metadata.prompt.clone(),
            family: "shapes".into(),
            tag: Some(p.metadata.tag.tag().to_string()),
            metadata: Some(p.metadata.to_json()),
        })
        .collect();
        let mut writer = ShardWriter::new(
            &ctx.out_dir,
            Arc::new(RlPrompt::SCHEMA.arrow_schema()),
            ShardOptions::default(),
        );
        writer.write(&schemas::to_batch(&rows)?)?;
        let summary = writer.finish()?;
        Ok(Output {
            rows: Some(summary.rows),
            schema: summary.schema_id.clone(),
            meta: summary.meta(),
        })
    }
}
