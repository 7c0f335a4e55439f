//! What a run leaves beside its model ([`write_run`]): `metrics.jsonl` (one JSON line
//! per step), `eval.jsonl` (one line per held-out evaluation), PNG curves in
//! `report/`, each plot a few named series of (step, value) read off the metrics, and
//! the same series as TensorBoard scalars (tag `<plot>/<series>`, the plot named by its
//! file's stem) in `tensorboard/` ([`tensorboard`](super::tensorboard)).

use super::tensorboard;
use datasets::images::plot::{Series, line_png};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Write `metrics.jsonl`, `eval.jsonl` (when there are evaluations) and the curves
/// into the artifact folder `out`.
pub fn write_run<M: Serialize>(
    out: &Path,
    metrics: &[M],
    evals: &[serde_json::Value],
    step: fn(&M) -> usize,
    plots: &[Plot<M>],
) -> Result<(), String> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("metrics.jsonl", jsonl(metrics))?;
    if !evals.is_empty() {
        write("eval.jsonl", jsonl(evals))?;
    }
    write_curves(metrics, step, plots, &out.join("report"))?;
    write_tensorboard(metrics, step, plots, &out.join("tensorboard"))
}

/// Write every series of `plots` as TensorBoard scalars into `dir`'s event file.
pub fn write_tensorboard<M>(
    metrics: &[M],
    step: fn(&M) -> usize,
    plots: &[Plot<M>],
    dir: &Path,
) -> Result<(), String> {
    let mut scalars: BTreeMap<u64, Vec<(String, f32)>> = BTreeMap::new();
    for plot in plots {
        let stem = plot.file.strip_suffix(".png").unwrap_or(plot.file);
        for (name, read) in plot.series {
            for m in metrics {
                if let Some(y) = read(m) {
                    scalars
                        .entry(step(m) as u64)
                        .or_default()
                        .push((format!("{stem}/{name}"), y as f32));
                }
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(tensorboard::FILE);
    std::fs::write(&path, tensorboard::events(&scalars))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One JSON line per step.
pub fn jsonl<M: Serialize>(metrics: &[M]) -> String {
    let mut out = String::new();
    for m in metrics {
        out.push_str(&serde_json::to_string(m).expect("metrics serialise"));
        out.push('\n');
    }
    out
}

/// A value read off one step's metrics (`None`: not measured at that step).
pub type Reading<M> = fn(&M) -> Option<f64>;

/// One PNG: its file name, title, y label and series.
pub struct Plot<M: 'static> {
    pub file: &'static str,
    pub title: &'static str,
    pub y: &'static str,
    pub series: &'static [(&'static str, Reading<M>)],
}

/// Write each plot of `metrics` (steps read by `step`) into `dir`; a series with no
/// points is left out, a plot with none is not written. Returns the files written.
pub fn write_curves<M>(
    metrics: &[M],
    step: fn(&M) -> usize,
    plots: &[Plot<M>],
    dir: &Path,
) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for plot in plots {
        let points: Vec<(&str, Vec<(f64, f64)>)> = plot
            .series
            .iter()
            .map(|(name, read)| {
                let p = metrics
                    .iter()
                    .filter_map(|m| read(m).map(|y| (step(m) as f64, y)))
                    .collect();
                (*name, p)
            })
            .filter(|(_, p): &(&str, Vec<(f64, f64)>)| !p.is_empty())
            .collect();
        if points.is_empty() {
            continue;
        }
        let series: Vec<Series> = points
            .iter()
            .map(|(name, p)| Series { name, points: p })
            .collect();
        let png = line_png(&series, plot.title, "step", plot.y)?;
        let path = dir.join(plot.file);
        std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(plot.file.to_string());
    }
    Ok(written)
}
