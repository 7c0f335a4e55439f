//! The shapes world: a synthetic, fully known domain of colored shapes on a plain
//! background, with prompts in GenEval's six task families, an exact teacher (detailed
//! captions and augmented prompts from the scene graph) and an exact judge (detection
//! by color segmentation and geometry, GenEval's scoring rules). A pure library: no
//! engine, no I/O beyond returning bytes.
//!
//! - [`vocab`]: shapes, colors (with their RGB values), background, relations, words;
//! - [`scene`]: objects and scenes, their exact detections;
//! - [`generate`]: the seeded scene generator (random, or built from a record);
//! - [`render`]: anti-aliased rasterisation and PNG;
//! - [`metadata`]: GenEval-style records and their JSON;
//! - [`prompts`]: GenEval's six task templates and the seeded prompt-set generator;
//! - [`split`]: held-out color–shape pairs, relation–shape pairs, relations between
//!   two shapes and bindings;
//! - [`teacher`]: rationales (detailed or terse captions), augmented prompts and
//!   records of scenes;
//! - [`judge`]: detection and GenEval scoring of images, summaries;
//! - [`perturb`]: blur, noise and JPEG, the degradations the judge is tested against.

pub mod generate;
mod geometry;
pub mod judge;
pub mod metadata;
pub mod perturb;
pub mod prompts;
pub mod render;
pub mod scene;
mod scene_json;
pub mod split;
pub mod teacher;
pub mod vocab;

pub use generate::{Lattice, SceneGenerator};
pub use judge::{Detection, Judge, JudgeOptions, Summary, Verdict};
pub use metadata::{Exclude, Include, Metadata, Position, Task};
pub use prompts::{GeneratedPrompt, TaskCounts, all_prompts, prompt_set};
pub use render::{DEFAULT_SIZE, encode_png, render, render_png};
pub use scene::{Object, Scene};
pub use split::{HeldOut, Split};
pub use teacher::{
    augmented_prompts, detailed_caption, read_terse_caption, scene_metadata, terse_caption,
};
pub use vocab::{Color, Relation, Shape};

/// What can go wrong in the shapes world.
#[derive(Debug, thiserror::Error)]
pub enum ShapesError {
    /// A metadata record that is not valid JSON of GenEval's shape over this world.
    #[error("bad metadata record: {0}")]
    Metadata(String),
    /// No scene could be laid out (contradictory record, or too many constraints).
    #[error("{0}")]
    Layout(String),
    /// A request that contradicts the held-out pairs.
    #[error("held-out pairs: {0}")]
    HeldOut(String),
    /// Encoding or decoding an image failed.
    #[error("image: {0}")]
    Image(#[from] image::ImageError),
}
