//! Evaluation as a library of scoring functions over images and records, with thin
//! stages over them: the shapes world's GenEval (`eval.shapes_geneval`: the exact
//! judge, GenEval's summary, bootstrap intervals, [`shapes_geneval`], [`bootstrap`]),
//! ReasonGen-R1's VLM judge as requests and answers ([`vlm`]), and the guard against
//! benchmark prompts among training prompts (`eval.contamination`, [`contamination`]).

pub mod bootstrap;
pub mod contamination;
pub mod scores;
pub mod shapes_geneval;
pub mod vlm;

use pipeline::Registry;

/// Add every evaluation stage to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(shapes_geneval::ShapesGenEval);
    registry.register(contamination::Contamination);
    registry.register(scores::Scores);
}
