//! `shapes.scenes`: seeded scenes rendered to PNG, as a `source_image` table whose
//! `metadata` holds each scene graph and its GenEval-style record.
//!
//! A fraction of the scenes is built from training prompts of GenEval's six tasks (the
//! prompt is the row's caption and its record the truth); the rest are random scenes
//! of one to four objects, captioned by the teacher's short caption. No scene shows a
//! composition of the `held_out` preset; `none` is for a tokenizer's corpus (the image
//! tokenizer stands for VQ-16, trained on broad images, so it knows how everything
//! looks; held-out compositions are about what the image model learns from text–image
//! pairs). Objects are placed freely, or on a `lattice`.

use super::held_out::HeldOutPreset;
use datasets::shapes::{
    HeldOut, Lattice, Metadata, Scene, SceneGenerator, Split, Task, TaskCounts, augmented_prompts,
    prompt_set, render_png, scene_metadata,
};
use datasets::table::{ShardOptions, ShardWriter};
use pipeline::{ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext, StageError};
use schemars::JsonSchema;
use schemas::source_image::SourceImage;
use schemas::{ImageData, Row};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Config of `shapes.scenes`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenesConfig {
    /// Number of scenes.
    #[serde(default = "default_count")]
    pub count: usize,
    /// Side of the rendered images in pixels.
    #[serde(default = "default_size")]
    pub size: u32,
    /// Fraction of scenes built from GenEval-style training prompts (the rest random).
    #[serde(default = "default_task_fraction")]
    pub task_fraction: f64,
    /// Seed of the scenes.
    #[serde(default)]
    pub seed: u64,
    /// Objects on a lattice (`{ cells = 8, object_cells = 3 }`: the canvas cut in 8×8
    /// cells, objects 3 cells on a side on cell boundaries) instead of anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lattice: Option<LatticeConfig>,
    /// The compositions no scene shows (`standard`, `bindings`, or `none` for a
    /// tokenizer's corpus).
    #[serde(default, skip_serializing_if = "HeldOutPreset::is_default")]
    pub held_out: HeldOutPreset,
}

/// The `lattice` of [`ScenesConfig`].
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatticeConfig {
    /// Cells per side of the canvas.
    pub cells: u32,
    /// Cells per side of every object.
    pub object_cells: u32,
    /// The cells an object's box may start at on either axis (default: all that fit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<u32>,
}

impl From<LatticeConfig> for Lattice {
    fn from(c: LatticeConfig) -> Lattice {
        Lattice {
            cells: c.cells,
            object_cells: c.object_cells,
            slots: c.slots,
        }
    }
}

fn default_count() -> usize {
    2000
}
fn default_size() -> u32 {
    64
}
fn default_task_fraction() -> f64 {
    0.5
}

pub struct ShapesScenes;

/// The training prompts of each GenEval task, shuffled by `seed`.
fn training_prompts(seed: u64, held_out: &HeldOut) -> Vec<Vec<Metadata>> {
    let all = prompt_set(seed, &TaskCounts::uniform(usize::MAX), held_out);
    Task::GENEVAL
        .iter()
        .map(|task| {
            all.iter()
                .filter(|p| p.split == Split::Train && p.metadata.tag == *task)
                .map(|p| p.metadata.clone())
                .collect()
        })
        .collect()
}

/// The scene and record of scene `i`: for the first `task_scenes`, a training prompt
/// of each task in turn (cycling through the task's prompts); then random scenes.
fn scene(
    i: usize,
    task_scenes: usize,
    generator: &mut SceneGenerator,
    prompts: &[Vec<Metadata>],
) -> Result<(Scene, Metadata, String), StageError> {
    if i < task_scenes {
        let pool = &prompts[i % prompts.len()];
        let record = &pool[(i / prompts.len()) % pool.len()];
        let scene = generator.for_metadata(record)?;
        return Ok((scene, record.clone(), record.prompt.clone()));
    }
    let scene = generator.random()?;
    let caption = augmented_prompts(&scene).short_caption.unwrap_or_default();
    let record = scene_metadata(&scene);
    Ok((scene, record, caption))
}

impl Stage for ShapesScenes {
    type Config = ScenesConfig;
    const KIND: &'static str = "shapes.scenes";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Seeded scenes of coloured shapes rendered to PNG, with scene graphs and prompts (no held-out pairs).";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("source_image"));

    fn validate(config: &ScenesConfig, _: &pipeline::Bindings) -> Result<(), String> {
        if !(0.0..=1.0).contains(&config.task_fraction) {
            return Err(format!(
                "`task_fraction` {} is not in [0, 1]",
                config.task_fraction
            ));
        }
        if let Some(lattice) = &config.lattice {
            Lattice::from(lattice.clone())
                .validate()
                .map_err(|e| e.to_string())?;
            if !config.size.is_multiple_of(lattice.cells) {
                return Err(format!(
                    "`size` {} is not a multiple of the lattice's {} cells (objects would not sit on pixel boundaries)",
                    config.size, lattice.cells
                ));
            }
        }
        if config.size < 32 {
            return Err(format!(
                "`size` {} is too small for the judge (at least 32)",
                config.size
            ));
        }
        Ok(())
    }

    async fn run(&self, config: ScenesConfig, ctx: StageContext) -> Result<Output, StageError> {
        tokio::task::spawn_blocking(move || {
            let held_out = config.held_out.held_out();
            let prompts = training_prompts(config.seed, &held_out);
            let task_scenes = (config.count as f64 * config.task_fraction).round() as usize;
            let mut generator = SceneGenerator::new(config.seed).avoiding(held_out);
            if let Some(lattice) = config.lattice.clone() {
                generator = generator.on_lattice(lattice.into());
            }
            let mut writer = ShardWriter::new(
                &ctx.out_dir,
                Arc::new(SourceImage::SCHEMA.arrow_schema()),
                ShardOptions::default(),
            );
            ctx.progress.set_total(config.count as u64, "scenes");
            let mut rows = Vec::with_capacity(256);
            for i in 0..config.count {
                let (scene, record, caption) = scene(i, task_scenes, &mut generator, &prompts)?;
                let id = format!("scene-{i:06}");
                rows.push(SourceImage {
                    image: ImageData::from_bytes(
                        render_png(&scene, config.size)?,
                        Some(format!("{id}.png")),
                    ),
                    id,
                    caption: Some(caption),
                    source: "shapes".into(),
                    width: Some(config.size),
                    height: Some(config.size),
                    aesthetic: None,
                    metadata: Some(
                        serde_json::json!({"scene": scene.to_json(), "record": record.to_json()})
                            .to_string(),
                    ),
                });
                if rows.len() == 256 || i + 1 == config.count {
                    ctx.check_cancelled()?;
                    writer.write(&schemas::to_batch(&rows)?)?;
                    ctx.progress.inc(rows.len() as u64);
                    rows.clear();
                }
            }
            let summary = writer.finish()?;
            ctx.count("task_scenes", task_scenes as u64);
            ctx.count("random_scenes", (config.count - task_scenes) as u64);
            Ok(Output {
                rows: Some(summary.rows),
                schema: summary.schema_id.clone(),
                meta: summary.meta(),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("scenes thread: {e}")))?
    }
}
