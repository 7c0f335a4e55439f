//! Scenes: colored shapes on the plain background, in unit coordinates (the canvas is
//! `[0, 1]²`, y pointing down), with their exact detections (the truth a perfect
//! detector would report) and the separation between objects.

use super::geometry::area_fraction;
use super::judge::{BBox, Detection, JudgeOptions, Verdict, evaluate};
use super::metadata::Metadata;
use super::vocab::{Color, Shape};
use crate::rng::mix;

/// The smallest and largest object size (side of its box, a fraction of the canvas).
/// At 64×64 that is 14 to 22 pixels: large enough for the judge to tell a diamond
/// from a disc after blur and JPEG (at 11 pixels blur rounds its corners off), small
/// enough for four objects with gaps.
pub const MIN_SIZE: f64 = 0.22;
/// See [`MIN_SIZE`].
pub const MAX_SIZE: f64 = 0.34;
/// The least gap between two objects' boxes (4 px at 64×64: blur never joins them).
pub const GAP: f64 = 0.06;
/// The least distance from an object's box to the canvas edge.
pub const MARGIN: f64 = 0.03;

/// One object: a shape of a color, its box centred on `center`, `size` on a side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Object {
    pub shape: Shape,
    pub color: Color,
    /// `[x, y]` in unit coordinates.
    pub center: [f64; 2],
    /// The side of its square box, a fraction of the canvas side.
    pub size: f64,
}

impl Object {
    /// The object's box in pixels on a `canvas`×`canvas` image.
    pub fn bbox(&self, canvas: u32) -> BBox {
        let c = f64::from(canvas);
        let half = self.size / 2.0;
        BBox {
            x1: (self.center[0] - half) * c,
            y1: (self.center[1] - half) * c,
            x2: (self.center[0] + half) * c,
            y2: (self.center[1] + half) * c,
        }
    }

    /// The gap between two objects' boxes (negative when they overlap): the larger of
    /// the horizontal and vertical clearances.
    pub fn gap(&self, other: &Object) -> f64 {
        let reach = (self.size + other.size) / 2.0;
        let dx = (self.center[0] - other.center[0]).abs() - reach;
        let dy = (self.center[1] - other.center[1]).abs() - reach;
        dx.max(dy)
    }
}

/// A scene: objects on the plain background ([`super::vocab::BACKGROUND`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scene {
    pub objects: Vec<Object>,
}

impl Scene {
    /// What a perfect detector reports on a `canvas`×`canvas` render: every object with
    /// its true class, color and box, at confidence 1.
    pub fn detections(&self, canvas: u32) -> Vec<Detection> {
        self.objects
            .iter()
            .map(|o| {
                let bbox = o.bbox(canvas);
                Detection {
                    class: o.shape,
                    color: o.color,
                    bbox,
                    area: bbox.width() * bbox.height() * area_fraction(o.shape),
                    confidence: 1.0,
                }
            })
            .collect()
    }

    /// The scene a detector reports on a `canvas`×`canvas` image: each detection an
    /// object of its class and color, centred in its box, as large as the box's longer
    /// side. Places and sizes are as exact as the boxes.
    pub fn from_detections(detections: &[Detection], canvas: u32) -> Scene {
        let c = f64::from(canvas);
        Scene {
            objects: detections
                .iter()
                .map(|d| Object {
                    shape: d.class,
                    color: d.color,
                    center: [
                        (d.bbox.x1 + d.bbox.x2) / (2.0 * c),
                        (d.bbox.y1 + d.bbox.y2) / (2.0 * c),
                    ],
                    size: d.bbox.width().max(d.bbox.height()) / c,
                })
                .collect(),
        }
    }

    /// Does the scene itself (not a render of it) meet `metadata` under GenEval's rules?
    pub fn satisfies(&self, metadata: &Metadata, canvas: u32) -> Verdict {
        evaluate(&self.detections(canvas), metadata, &JudgeOptions::default())
    }

    /// The smallest gap between two objects' boxes (`None` with fewer than two).
    pub fn min_gap(&self) -> Option<f64> {
        let objs = &self.objects;
        (0..objs.len())
            .flat_map(|i| (i + 1..objs.len()).map(move |j| objs[i].gap(&objs[j])))
            .reduce(f64::min)
    }

    /// A hash of the scene's content, to seed wording that must depend on the scene
    /// alone.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.objects.iter().fold(0x5CE4E, |h, o| {
            [
                o.shape as u64,
                o.color as u64,
                o.center[0].to_bits(),
                o.center[1].to_bits(),
                o.size.to_bits(),
            ]
            .into_iter()
            .fold(h, |h, v| mix(h ^ v))
        })
    }
}
