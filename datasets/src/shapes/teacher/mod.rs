//! The exact teacher: what a captioning LLM would write for a scene, derived from its
//! scene graph. `caption` writes the rationale (detailed or terse), `augment` the
//! augmented prompts, `words` holds their shared phrasing; [`scene_metadata`] gives
//! the GenEval-style record of the scene, so images, prompts and the judge agree.

mod augment;
mod caption;
mod words;

pub use augment::augmented_prompts;
pub use caption::{detailed_caption, read_terse_caption, terse_caption};

use super::metadata::{Exclude, Include, Metadata, Task};
use super::scene::Scene;
use super::vocab::Shape;
use words::reading_order;

/// The whole-scene record (tag `scene`) whose prompt is the scene's short caption:
/// for each shape present, in reading order, an include clause with its count and,
/// when all objects of that shape share a color, the color; for every shape an exclude
/// clause one above its count (counts are exact, absent shapes excluded). Positions
/// are left out, as the short caption does not state them. A render of the scene
/// meets it; an image with a missing, extra or miscolored object does not.
pub fn scene_metadata(scene: &Scene) -> Metadata {
    let objects = reading_order(scene);
    let mut include: Vec<Include> = Vec::new();
    for obj in &objects {
        if include.iter().any(|inc| inc.class == obj.shape) {
            continue;
        }
        let same: Vec<_> = objects.iter().filter(|o| o.shape == obj.shape).collect();
        include.push(Include {
            color: same
                .iter()
                .all(|o| o.color == obj.color)
                .then_some(obj.color),
            ..Include::new(obj.shape, same.len())
        });
    }
    let exclude = Shape::ALL
        .into_iter()
        .map(|class| Exclude {
            class,
            count: objects.iter().filter(|o| o.shape == class).count() + 1,
        })
        .collect();
    Metadata {
        tag: Task::Scene,
        include,
        exclude,
        prompt: augment::short_caption(scene),
    }
}
