//! The eval stages through the engine, one test binary: official evaluators over the
//! benchmarks' layouts, CLIP and a VLM over HTTP as substitute judges, the report.

mod clip;
mod harness;
mod official;
mod report;
mod vlm_judge;
