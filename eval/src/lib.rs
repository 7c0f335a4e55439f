//! Benchmark stages: GenEval, DPG-Bench and T2I-CompBench generation in their official
//! layouts, scoring (official evaluators as command nodes, substitute judges labelled
//! as such, the exact shapes judge), summaries and reports.
//!
//! Empty until the evaluation issues land; the crate exists so that the workspace has
//! its final shape and dependencies point the right way from the start.
