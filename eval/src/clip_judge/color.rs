//! GenEval's colour check with CLIP, without its detector: for each include clause of a
//! `colors` or `color_attr` record that names a colour, the whole image (not the
//! object's masked crop, as GenEval has it) is classified among GenEval's ten colours
//! by GenEval's zero-shot classifier for that class (three templates, each text
//! embedding normalised, averaged and normalised again); the image is correct when
//! every required colour wins. Records of other tasks are not judged.

use crate::clip::{Clip, ClipError};
use candle_core::Tensor;
use serde::Deserialize;
use std::collections::HashMap;

/// GenEval's colours, in its order.
pub const COLORS: [&str; 10] = [
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
];

/// The tasks whose records this judge checks.
pub const TASKS: [&str; 2] = ["colors", "color_attr"];

/// GenEval's zero-shot templates for the colour of `class`.
pub fn templates(color: &str, class: &str) -> [String; 3] {
    [
        format!("a photo of a {color} {class}"),
        format!("a photo of a {color}-colored {class}"),
        format!("a photo of a {color} object"),
    ]
}

/// What the check needs of a GenEval record.
#[derive(Clone, Debug, Deserialize)]
pub struct Record {
    pub tag: String,
    pub include: Vec<Clause>,
}

/// One include clause: a class, and the colour it must have, if any.
#[derive(Clone, Debug, Deserialize)]
pub struct Clause {
    pub class: String,
    #[serde(default)]
    pub color: Option<String>,
}

impl Record {
    /// The record of a prompt's metadata, where it is a colour task; `Ok(None)` for
    /// other tasks; an error names what is wrong.
    pub fn of(metadata: &str) -> Result<Option<Record>, String> {
        let r: Record =
            serde_json::from_str(metadata).map_err(|e| format!("not a GenEval record ({e})"))?;
        if !TASKS.contains(&r.tag.as_str()) {
            return Ok(None);
        }
        for c in &r.include {
            if let Some(color) = &c.color
                && !COLORS.contains(&color.as_str())
            {
                return Err(format!(
                    "colour `{color}` is not one of GenEval's {COLORS:?}"
                ));
            }
        }
        Ok(Some(r))
    }
}

/// The per-class colour classifiers, built once per class.
#[derive(Default)]
pub struct Classifiers {
    by_class: HashMap<String, Tensor>,
}

impl Classifiers {
    /// The classifier of `class`: (projection × colours), columns normalised.
    fn of(&mut self, clip: &Clip, class: &str) -> Result<&Tensor, ClipError> {
        if !self.by_class.contains_key(class) {
            let mut columns = Vec::with_capacity(COLORS.len());
            for color in COLORS {
                let texts = templates(color, class);
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let mean = clip.text_embeddings(&refs)?.mean_keepdim(0)?;
                columns.push(crate::clip::model::normalize(&mean)?);
            }
            let weights = Tensor::cat(&columns, 0)?.t()?.contiguous()?;
            self.by_class.insert(class.to_string(), weights);
        }
        Ok(&self.by_class[class])
    }

    /// The colour scores (cosines) of one normalised image embedding (1 × projection)
    /// for `class`, in [`COLORS`]' order.
    pub fn scores(
        &mut self,
        clip: &Clip,
        image: &Tensor,
        class: &str,
    ) -> Result<Vec<f32>, ClipError> {
        let w = self.of(clip, class)?;
        Ok(image.matmul(w)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// The winning colour of `scores` (the first of equal maxima).
pub fn predicted(scores: &[f32]) -> &'static str {
    let best = scores
        .iter()
        .enumerate()
        .fold(0, |b, (i, s)| if *s > scores[b] { i } else { b });
    COLORS[best]
}

/// The verdict on one image: correct when every clause's colour won; the reason names
/// each clause (`cube: red (wanted blue)`).
pub fn verdict(clauses: &[(&Clause, &'static str)]) -> (bool, String) {
    let mut correct = true;
    let parts: Vec<String> = clauses
        .iter()
        .filter_map(|(c, got)| {
            let wanted = c.color.as_deref()?;
            correct &= wanted == *got;
            Some(if wanted == *got {
                format!("{}: {got}", c.class)
            } else {
                format!("{}: {got} (wanted {wanted})", c.class)
            })
        })
        .collect();
    (correct, parts.join("; "))
}
