//! A report people look at: one self-contained HTML page over evaluations (scores per
//! task with intervals and judges, models side by side, image grids with verdicts and
//! rationales, the worst and best prompts), training curves and dataset statistics.
//! Artifacts are read into a [`Report`] ([`gather`]), then written as HTML ([`html`])
//! with inline SVG charts ([`svg`], [`curves`]) and dataset cards ([`card`]); the
//! `eval.report` stage ([`stage`]) and `reasongen report` share that path.

pub mod card;
pub mod curves;
pub mod gather;
pub mod html;
pub mod model;
pub mod stage;
pub mod svg;

pub use gather::{ReportConfig, gather};
pub use html::render;
pub use model::Report;
pub use stage::EvalReport;
