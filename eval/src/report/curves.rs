//! Training curves off a model's `metrics.jsonl` and `eval.jsonl`: the headline
//! charts a reader looks at (loss, reward, entropy, gradient norm, learning rate, and
//! the held-out score with its interval), each drawn from the fields present. The
//! training run's own PNGs and TensorBoard file keep every diagnostic; the page keeps
//! the few that tell how training went. Long runs are thinned to at most
//! [`MAX_POINTS`] points a series, each the mean of an equal run of steps.

use super::model::Chart;
use serde_json::Value;

/// Points a series keeps at most.
pub const MAX_POINTS: usize = 400;

/// (title, fields of `metrics.jsonl`, each a series).
const CHARTS: &[(&str, &[&str])] = &[
    ("Loss", &["loss", "text_loss", "image_loss"]),
    ("Reward (mean)", &["reward_mean"]),
    ("Entropy (nats)", &["entropy_text", "entropy_image"]),
    ("Gradient norm", &["grad_norm"]),
    ("Learning rate", &["lr"]),
];

/// The charts of a run's metrics (one JSON object per step, each with `step`) and
/// held-out evaluations (`overall`, `overall_ci95`, `step`); charts with no points
/// are left out.
pub fn charts(metrics: &[Value], evals: &[Value]) -> Vec<Chart> {
    let mut out: Vec<Chart> = CHARTS
        .iter()
        .map(|(title, fields)| Chart {
            title: title.to_string(),
            series: fields
                .iter()
                .map(|f| (f.to_string(), thin(&points(metrics, |m| m[*f].as_f64()))))
                .filter(|(_, p)| !p.is_empty())
                .collect(),
            band: Vec::new(),
        })
        .filter(|c| !c.series.is_empty())
        .collect();
    let held_out = points(evals, |e| e["overall"].as_f64());
    if !held_out.is_empty() {
        let band = evals
            .iter()
            .filter_map(|e| {
                let ci = e["overall_ci95"].as_array()?;
                Some((
                    e["step"].as_f64()?,
                    ci.first()?.as_f64()?,
                    ci.get(1)?.as_f64()?,
                ))
            })
            .collect();
        out.push(Chart {
            title: "Held-out score (95 % interval)".into(),
            series: vec![("overall".into(), held_out)],
            band,
        });
    }
    out
}

fn points(rows: &[Value], read: impl Fn(&Value) -> Option<f64>) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((r["step"].as_f64()?, read(r)?)))
        .filter(|(_, y)| y.is_finite())
        .collect()
}

/// At most [`MAX_POINTS`] points: means of equal runs of consecutive points.
fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let per = points.len().div_ceil(MAX_POINTS);
    points
        .chunks(per)
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn charts_take_the_fields_present_and_thin_long_runs() {
        let metrics: Vec<Value> = (1..=1000)
            .map(|s| json!({"step": s, "loss": 1.0 / s as f64, "lr": 0.01, "text_loss": null}))
            .collect();
        let evals = vec![
            json!({"step": 500, "overall": 0.4, "overall_ci95": [0.3, 0.5]}),
            json!({"step": 1000, "overall": 0.6, "overall_ci95": [0.5, 0.7]}),
        ];
        let c = charts(&metrics, &evals);
        let titles: Vec<&str> = c.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(
            titles,
            ["Loss", "Learning rate", "Held-out score (95 % interval)"]
        );
        let loss = &c[0].series;
        assert_eq!(loss.len(), 1, "text_loss is null throughout");
        assert_eq!(loss[0].1.len(), 334, "1000 points in runs of 3");
        assert_eq!(loss[0].1[0], (2.0, (1.0 + 0.5 + 1.0 / 3.0) / 3.0));
        assert_eq!(c[2].band, [(500.0, 0.3, 0.5), (1000.0, 0.5, 0.7)]);
        assert!(charts(&[], &[]).is_empty());
    }
}
