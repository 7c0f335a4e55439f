//! Evaluation as a library of scoring functions over images and records, with thin
//! stages over them: the shapes world's GenEval (`eval.shapes_geneval`: the exact
//! judge, GenEval's summary, bootstrap intervals, [`shapes_geneval`], [`bootstrap`]),
//! ReasonGen-R1's VLM judge as requests and answers ([`vlm`]; the shapes VLM also
//! captions and augments as the exact teacher, [`vlm_teacher`]), benchmarks judged by a
//! VLM over HTTP as a labelled substitute (`eval.vlm_judge`: [`vlm_judge`],
//! [`vlm_questions`], [`vlm_verdicts`]), CLIP in candle as a labelled substitute for
//! T2I-CompBench's CLIPScore and GenEval's colours (`eval.clip`: [`clip`],
//! [`clip_judge`]), and the guard against
//! benchmark prompts among training prompts (`eval.contamination`, [`contamination`]);
//! and a page people look at over all of it (`eval.report`, [`report`]).

pub mod benchmark;
pub mod bootstrap;
pub mod clip;
pub mod clip_judge;
pub mod contamination;
pub mod layout;
pub mod official;
pub mod report;
pub mod scores;
pub mod shapes_geneval;
pub mod trace;
pub mod vlm;
pub mod vlm_judge;
pub mod vlm_questions;
pub mod vlm_teacher;
pub mod vlm_verdicts;

use pipeline::Registry;

/// Add every evaluation stage to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(shapes_geneval::ShapesGenEval);
    registry.register(contamination::Contamination);
    registry.register(scores::Scores);
    registry.register(report::EvalReport);
    registry.register(vlm_judge::VlmJudge);
    registry.register(layout::Layout);
    registry.register(official::Official);
    registry.register(clip_judge::ClipJudge);
}
