//! The eval stages through the engine, one test binary: official evaluators over the
//! benchmarks' layouts.

mod harness;
mod official;
