//! `eval.report`: one self-contained HTML page (`report.html`) over evaluations,
//! their images, the training runs and the dataset release. Verdicts keep no image
//! bytes, so the generation tables are inputs too (`samples`): each evaluation's images
//! are those of the table whose digest its scores name (see [`gather`](super::gather)).

use super::gather::{ReportConfig, gather};
use super::html::render;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputArtifact, InputSpec, Output, OutputDecl, Stage,
    StageContext, StageError,
};
use serde_json::json;

/// The page's file in the report artifact.
pub const FILE: &str = "report.html";

/// `eval.report`.
pub struct EvalReport;

impl Stage for EvalReport {
    type Config = ReportConfig;
    const KIND: &'static str = "eval.report";
    const VERSION: u32 = 1;
    const DOC: &'static str = "A page people look at (report.html, self-contained): scores per task with intervals and judges, models side by side, image grids with verdicts and rationales, worst and best prompts, training curves, dataset statistics.";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "evals",
            kinds: &[ArtifactKind::Report],
            schema: None,
            arity: Arity::Many,
            doc: "reports of eval stages (scores and per-image verdicts)",
        },
        InputSpec {
            name: "samples",
            kinds: &[ArtifactKind::Table],
            schema: Some("eval_sample"),
            arity: Arity::Many,
            doc: "the generation tables the evaluations judged (their images)",
        },
        InputSpec {
            name: "scores",
            kinds: &[ArtifactKind::Table],
            schema: Some("eval_score"),
            arity: Arity::Optional,
            doc: "an eval_score table: scores of eval reports not bound to `evals` are shown too",
        },
        InputSpec {
            name: "models",
            kinds: &[ArtifactKind::Model],
            schema: None,
            arity: Arity::Many,
            doc: "models: training runs (metrics.jsonl) give curves, every model names the scores' model digests",
        },
        InputSpec {
            name: "dataset",
            kinds: &[ArtifactKind::Release],
            schema: None,
            arity: Arity::Optional,
            doc: "a dataset release: its card's statistics",
        },
    ];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Report));

    async fn run(&self, config: ReportConfig, ctx: StageContext) -> Result<Output, StageError> {
        tokio::task::spawn_blocking(move || {
            let artifacts: Vec<InputArtifact> = ["evals", "scores", "samples", "models", "dataset"]
                .iter()
                .flat_map(|name| ctx.inputs(name).iter().cloned())
                .collect();
            let title = config
                .title
                .clone()
                .unwrap_or_else(|| format!("reasongen report: recipe {}", ctx.recipe));
            let report = gather(&artifacts, &config, title)?;
            let html = render(&report);
            std::fs::write(ctx.out_dir.join(FILE), &html)?;
            ctx.log(format!(
                "{FILE}: {} evaluations, {} training runs, {} bytes",
                report.evals.len(),
                report.trainings.len(),
                html.len()
            ));
            Ok(Output {
                rows: None,
                schema: None,
                meta: json!({
                    "evaluations": report.evals.len(),
                    "training_runs": report.trainings.len(),
                    "datasets": report.datasets.len(),
                    "bytes": html.len(),
                }),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("report thread: {e}")))?
    }
}
