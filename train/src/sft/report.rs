//! What a run leaves beside its model: `metrics.jsonl` (one line per step) and PNG
//! curves of the loss (total, text, image), the learning rate and the gradient norm.

use super::trainer::StepMetrics;
use datasets::images::plot::{Series, line_png};
use std::path::Path;

/// One JSON line per step.
pub fn metrics_jsonl(metrics: &[StepMetrics]) -> String {
    let mut out = String::new();
    for m in metrics {
        out.push_str(&serde_json::to_string(m).expect("metrics serialise"));
        out.push('\n');
    }
    out
}

/// The curves as `loss.png`, `lr.png` and `grad_norm.png` in `dir`.
pub fn write_curves(metrics: &[StepMetrics], dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let points = |f: &dyn Fn(&StepMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        metrics
            .iter()
            .filter_map(|m| f(m).map(|y| (m.step as f64, y)))
            .collect()
    };
    let loss = points(&|m| Some(m.loss));
    let text = points(&|m| m.text_loss);
    let image = points(&|m| m.image_loss);
    let lr = points(&|m| Some(m.lr));
    let norm = points(&|m| Some(m.grad_norm));
    let plots: [(&str, Vec<Series>, &str, &str); 3] = [
        (
            "loss.png",
            vec![
                Series {
                    name: "weighted loss",
                    points: &loss,
                },
                Series {
                    name: "text CE",
                    points: &text,
                },
                Series {
                    name: "image CE",
                    points: &image,
                },
            ],
            "SFT loss",
            "loss",
        ),
        (
            "lr.png",
            vec![Series {
                name: "lr",
                points: &lr,
            }],
            "Learning rate",
            "lr",
        ),
        (
            "grad_norm.png",
            vec![Series {
                name: "grad norm",
                points: &norm,
            }],
            "Gradient norm (before clipping)",
            "norm",
        ),
    ];
    let mut written = Vec::new();
    for (file, series, title, y) in plots {
        let series: Vec<Series> = series
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .collect();
        let png = line_png(&series, title, "step", y)?;
        let path = dir.join(file);
        std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(file.to_string());
    }
    Ok(written)
}
