//! Evaluation: benchmark stages that score generated images and summarise them. Now the
//! shapes world's GenEval (`eval.shapes_geneval`, exact judge); GenEval, DPG-Bench and
//! T2I-CompBench in their official layouts as they land.

pub mod bootstrap;
pub mod shapes_geneval;

use pipeline::Registry;

/// Add every evaluation stage to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(shapes_geneval::ShapesGenEval);
}
