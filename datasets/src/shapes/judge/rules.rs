//! GenEval's scoring rules over a list of detections (`evaluation/evaluate_images.py`):
//! per-class lists cut by confidence and `max_objects`, include clauses on the
//! top-`count` detections (count, then color, then position against an earlier group
//! with `relative_position`), exclude clauses on all kept detections, and GenEval's
//! reason strings.

use crate::shapes::metadata::{Metadata, Task};
use crate::shapes::vocab::{Color, Relation, Shape};

/// An axis-aligned box in pixels: `[x1, y1)` to `[x2, y2)`, y pointing down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl BBox {
    /// The box's center, `[x, y]`.
    pub fn center(&self) -> [f64; 2] {
        [(self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0]
    }

    /// `x2 - x1`.
    pub fn width(&self) -> f64 {
        self.x2 - self.x1
    }

    /// `y2 - y1`.
    pub fn height(&self) -> f64 {
        self.y2 - self.y1
    }
}

/// One detected object.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub class: Shape,
    pub color: Color,
    pub bbox: BBox,
    /// Area in pixels.
    pub area: f64,
    /// In `[0, 1]`; 1 for exact (scene-derived) detections.
    pub confidence: f64,
}

/// GenEval's `position_threshold`: the margin of `relative_position`.
pub(crate) const POSITION_MARGIN: f64 = 0.1;

/// GenEval's evaluator options. GenEval's thresholds (0.3, and 0.9 for counting) are
/// tuned to Mask2Former's scores; this detector's confidence is 0 on the boundary
/// between two shapes or colors and 1 on a prototype (see [`super::Judge::detect`]),
/// clean renders score above 0.8, and the smallest diamonds after blur, noise and JPEG
/// come down to about 0.22. The defaults (0.2 for every task) keep all of those and drop
/// blobs that are nearly as much one shape or color as another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JudgeOptions {
    /// Detections count only with a confidence strictly above this…
    pub threshold: f64,
    /// …or above this for the `counting` task.
    pub counting_threshold: f64,
    /// At most this many detections per class (GenEval: 16).
    pub max_objects: usize,
    /// `relative_position`'s margin, a fraction of the two boxes' summed sizes (0.1).
    pub position_threshold: f64,
}

impl Default for JudgeOptions {
    fn default() -> JudgeOptions {
        JudgeOptions {
            threshold: 0.2,
            counting_threshold: 0.2,
            max_objects: 16,
            position_threshold: POSITION_MARGIN,
        }
    }
}

/// Whether an image meets its record, and GenEval's reasons when it does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Every include clause met and no exclude clause broken.
    pub correct: bool,
    /// GenEval's reason lines, joined by `\n`; empty when correct.
    pub reason: String,
}

/// GenEval's direction of `a` from `b`: the center offset shrunk by `margin` times the
/// summed box sizes on each axis, divided by the offset's length; `None` when nothing
/// is left of it (both components below 1e-3).
pub(crate) fn direction(a: &BBox, b: &BBox, margin: f64) -> Option<[f64; 2]> {
    let (ca, cb) = (a.center(), b.center());
    let offset = [ca[0] - cb[0], ca[1] - cb[1]];
    let dims = [a.width() + b.width(), a.height() + b.height()];
    let revised: Vec<f64> = (0..2)
        .map(|i| (offset[i].abs() - margin * dims[i]).max(0.0) * offset[i].signum())
        .collect();
    if revised.iter().all(|r| r.abs() < 1e-3) {
        return None;
    }
    let norm = offset[0].hypot(offset[1]);
    Some([revised[0] / norm, revised[1] / norm])
}

/// GenEval's `relative_position(A, B)`: the relations that hold of `a` with respect to
/// `b`, in GenEval's order (several can hold at once, none when too close).
pub fn relative_position(a: &BBox, b: &BBox, margin: f64) -> Vec<Relation> {
    let Some([dx, dy]) = direction(a, b, margin) else {
        return Vec::new();
    };
    [
        (dx < -0.5, Relation::LeftOf),
        (dx > 0.5, Relation::RightOf),
        (dy < -0.5, Relation::Above),
        (dy > 0.5, Relation::Below),
    ]
    .into_iter()
    .filter_map(|(holds, rel)| holds.then_some(rel))
    .collect()
}

/// The kept detections of `class`, most confident first.
fn kept(
    detections: &[Detection],
    class: Shape,
    threshold: f64,
    max_objects: usize,
) -> Vec<&Detection> {
    let mut out: Vec<&Detection> = detections
        .iter()
        .filter(|d| d.class == class && d.confidence > threshold)
        .collect();
    out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    out.truncate(max_objects);
    out
}

/// Scores detections against a record with GenEval's rules.
pub fn evaluate(detections: &[Detection], metadata: &Metadata, options: &JudgeOptions) -> Verdict {
    let threshold = if metadata.tag == Task::Counting {
        options.counting_threshold
    } else {
        options.threshold
    };
    let objects = |class| kept(detections, class, threshold, options.max_objects);
    let mut reasons: Vec<String> = Vec::new();
    let mut groups: Vec<Option<Vec<&Detection>>> = Vec::new();
    for req in &metadata.include {
        let class = req.class.name();
        let mut found = objects(req.class);
        found.truncate(req.count);
        let mut matched = found.len() >= req.count;
        if !matched {
            reasons.push(format!(
                "expected {class}>={}, found {}",
                req.count,
                found.len()
            ));
        } else {
            if let Some(color) = req.color {
                let count_of = |c: Color| found.iter().filter(|d| d.color == c).count();
                if count_of(color) < req.count {
                    matched = false;
                    let seen: Vec<String> = Color::ALL
                        .into_iter()
                        .filter(|&c| count_of(c) > 0)
                        .map(|c| format!("{} {}", count_of(c), c.name()))
                        .collect();
                    reasons.push(format!(
                        "expected {} {class}>={}, found {} {}; and {}",
                        color.name(),
                        req.count,
                        count_of(color),
                        color.name(),
                        seen.join(", ")
                    ));
                }
            }
            if let (Some(pos), true) = (req.position, matched) {
                let rel = pos.relation.name();
                match groups.get(pos.group).and_then(Option::as_ref) {
                    None => {
                        matched = false;
                        reasons.push(format!("no target for {class} to be {rel}"));
                    }
                    Some(targets) => {
                        let wrong = found.iter().find_map(|obj| {
                            targets.iter().find_map(|target| {
                                let rels = relative_position(
                                    &obj.bbox,
                                    &target.bbox,
                                    options.position_threshold,
                                );
                                (!rels.contains(&pos.relation)).then_some(rels)
                            })
                        });
                        if let Some(rels) = wrong {
                            matched = false;
                            let rels: Vec<&str> = rels.iter().map(|r| r.name()).collect();
                            reasons.push(format!(
                                "expected {class} {rel} target, found {} target",
                                rels.join(" and ")
                            ));
                        }
                    }
                }
            }
        }
        groups.push(matched.then_some(found));
    }
    for req in &metadata.exclude {
        let n = objects(req.class).len();
        if n >= req.count {
            reasons.push(format!(
                "expected {}<{}, found {n}",
                req.class.name(),
                req.count
            ));
        }
    }
    let correct = reasons.is_empty();
    Verdict {
        correct,
        reason: reasons.join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(x: f64, y: f64, side: f64) -> BBox {
        BBox {
            x1: x,
            y1: y,
            x2: x + side,
            y2: y + side,
        }
    }

    #[test]
    fn relative_position_follows_geneval() {
        let b = bbox(20.0, 20.0, 10.0);
        assert_eq!(
            relative_position(&bbox(0.0, 20.0, 10.0), &b, 0.1),
            vec![Relation::LeftOf]
        );
        assert_eq!(
            relative_position(&bbox(20.0, 40.0, 10.0), &b, 0.1),
            vec![Relation::Below]
        );
        assert_eq!(
            relative_position(&bbox(0.0, 0.0, 10.0), &b, 0.1),
            vec![Relation::LeftOf, Relation::Above]
        );
        // Centres 1 px apart are inside the margin: no relation at all.
        assert!(relative_position(&bbox(21.0, 20.0, 10.0), &b, 0.1).is_empty());
    }
}
