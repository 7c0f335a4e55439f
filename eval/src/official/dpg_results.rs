//! ELLA's DPG-Bench results file read back: one line per grid (`path, crop scores…,
//! mean`), then the L1 and L2 category scores and `DPG-Bench score: X` (×100). The
//! headline's 95 % interval resamples grids (one per prompt).

use crate::bootstrap::mean_interval;
use crate::scores::ScoreContext;
use schemas::eval_score::EvalScore;

/// One grid's scores.
#[derive(Clone, Debug, PartialEq)]
pub struct GridScore {
    /// The item id (the file name without its extension, as the evaluator reads it).
    pub item: String,
    pub crops: Vec<f64>,
    pub score: f64,
}

/// A results file.
#[derive(Clone, Debug, PartialEq)]
pub struct DpgResults {
    pub images: Vec<GridScore>,
    /// (`L1 entity`, 87.1), (`L2 attribute - color`, …), in the file's order, ×100.
    pub categories: Vec<(String, f64)>,
    /// The `DPG-Bench score`, ×100.
    pub score: f64,
}

/// Parse a results file; an error names the line.
pub fn parse(text: &str) -> Result<DpgResults, String> {
    let mut images = Vec::new();
    let mut categories = Vec::new();
    let mut level = None;
    let mut score = None;
    for (i, line) in text.lines().enumerate() {
        let bad = |what: &str| format!("DPG results line {}: {what}: {line:?}", i + 1);
        if let Some(v) = line.strip_prefix("DPG-Bench score:") {
            score = Some(v.trim().parse::<f64>().map_err(|_| bad("not a number"))?);
        } else if line.starts_with("L1 category scores") {
            level = Some("L1");
        } else if line.starts_with("L2 category scores") {
            level = Some("L2");
        } else if let (Some(l), Some(rest)) = (level, line.strip_prefix('\t')) {
            let (name, v) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("no `name: score`"))?;
            let v = v.trim().parse::<f64>().map_err(|_| bad("not a number"))?;
            categories.push((format!("{l} {}", name.trim()), v));
        } else if ["Model:", "Image path:", "Save results to:"]
            .iter()
            .any(|h| line.starts_with(h))
            || line.trim().is_empty()
        {
            continue;
        } else if level.is_none() {
            let fields: Vec<&str> = line.split(", ").collect();
            let numbers: Vec<f64> = fields[1..]
                .iter()
                .map(|f| f.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad("a grid line is `path, crop scores…, mean`"))?;
            let (&mean, crops) = numbers.split_last().ok_or_else(|| bad("no scores"))?;
            let name = fields[0].rsplit('/').next().unwrap_or(fields[0]);
            images.push(GridScore {
                item: name.split('.').next().unwrap_or(name).to_string(),
                crops: crops.to_vec(),
                score: mean,
            });
        }
    }
    Ok(DpgResults {
        images,
        categories,
        score: score
            .ok_or("the DPG results hold no `DPG-Bench score:` line (did the evaluator finish?)")?,
    })
}

/// The score rows: `overall` (×100, as published) with its interval, then the
/// categories as the evaluator prints them (its L1/L2 numbers come from the last crop
/// before the dependency rule, `research/benchmarks.md` §2.3; kept as printed).
pub fn rows(r: &DpgResults, context: &ScoreContext, rounds: usize) -> Vec<EvalScore> {
    let values: Vec<f64> = r.images.iter().map(|g| g.score * 100.0).collect();
    let (_, lo, hi) = mean_interval(&values, rounds, 0.95, 0);
    let n = r.images.len();
    let crops = r.images.iter().map(|g| g.crops.len()).sum();
    let mut rows = vec![context.row("overall", r.score, Some((lo, hi)), n, crops)];
    rows.extend(
        r.categories
            .iter()
            .map(|(c, v)| context.row(c, *v, None, n, crops)),
    );
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_lines_categories_and_the_headline_are_read() {
        let text = "/a/images/partiprompts97.png, 1.0, 0.5, 0.75, 0.25, 0.625\n/a/images/12.png, 0.0, 0.0, 1.0, 1.0, 0.5\nModel: images\nL1 category scores:\n\tentity: 80.0\nL2 category scores:\n\tattribute - color: 70.5\nImage path: /a/images\nSave results to: /a/r.txt\nDPG-Bench score: 56.25\n";
        let r = parse(text).unwrap();
        assert_eq!(r.images.len(), 2);
        assert_eq!(r.images[0].item, "partiprompts97");
        assert_eq!(r.images[0].crops, vec![1.0, 0.5, 0.75, 0.25]);
        assert_eq!(r.images[1].score, 0.5);
        assert_eq!(
            r.categories,
            vec![
                ("L1 entity".to_string(), 80.0),
                ("L2 attribute - color".to_string(), 70.5)
            ]
        );
        assert_eq!(r.score, 56.25);
        assert!(
            parse("/a/1.png, 0.5, 0.5\n")
                .unwrap_err()
                .contains("DPG-Bench score")
        );
        assert!(parse("/a/1.png, x, 0.5\n").unwrap_err().contains("line 1"));
    }
}
