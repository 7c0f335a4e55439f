//! Shape classification by geometry. Moments of each pixel's coverage do not care
//! about ragged edges, and symmetric blur leaves the odd ones and the shape of the
//! projections nearly as they were:
//!
//! - the fill of the box by the pixels at least half covered (a blurred edge is cut
//!   where it was): disc π/4, square 1, triangle and diamond ½;
//! - the skewness of the coverage along y: the upward triangle −2√2/5, the others 0;
//! - the kurtosis of the coverage projected on the axes (square 9/5, disc 2, triangle
//!   and diamond 12/5) and its change from the axes to the diagonals (square +3/5,
//!   disc and triangle 0, diamond −3/5);
//! - the log aspect of the box: 0 for every shape, so it only flags what is none.
//!
//! The nearest prototype (in a weighted distance) names the shape.

use super::nearest;
use crate::shapes::geometry::{area_fraction, projection_kurtosis, row_skewness};
use crate::shapes::judge::rules::BBox;
use crate::shapes::vocab::Shape;
use std::f64::consts::FRAC_1_SQRT_2;

/// Weights of the features in the distance: the nearest pairs of prototypes
/// (disc–square, triangle–diamond, disc–triangle) end up 0.4–0.6 apart.
const WEIGHTS: [f64; 5] = [1.0, 0.5, 1.0, 1.0, 0.5];

/// A component's measured geometry.
pub(crate) struct Geometry {
    /// The box of the pixels at least half covered.
    pub(crate) bbox: BBox,
    /// Their number.
    pub(crate) area: f64,
    features: [f64; 5],
}

/// Box, area and features of pixels with their coverage.
pub(crate) fn measure(pixels: &[(u32, u32, f64)]) -> Geometry {
    let (mut x1, mut y1, mut x2, mut y2) = (u32::MAX, u32::MAX, 0, 0);
    let mut area = 0.0;
    for &(x, y, _) in pixels.iter().filter(|p| p.2 >= 0.5) {
        (x1, y1, x2, y2) = (x1.min(x), y1.min(y), x2.max(x), y2.max(y));
        area += 1.0;
    }
    let bbox = BBox {
        x1: f64::from(x1),
        y1: f64::from(y1),
        x2: f64::from(x2) + 1.0,
        y2: f64::from(y2) + 1.0,
    };
    let (w, h) = (bbox.width(), bbox.height());
    let m = Moments::new(pixels);
    let axis = (m.kurtosis(0) + m.kurtosis(1)) / 2.0;
    let diagonal = (m.kurtosis(2) + m.kurtosis(3)) / 2.0;
    Geometry {
        bbox,
        area,
        features: [
            area / (w * h),
            m.skewness_y(),
            axis,
            diagonal - axis,
            (w / h).ln(),
        ],
    }
}

/// Central moments of the coverage-weighted pixel centers projected on x, y and the
/// two diagonals (second and fourth), and on y (third), gathered in one pass.
struct Moments {
    second: [f64; 4],
    fourth: [f64; 4],
    third_y: f64,
}

impl Moments {
    fn new(pixels: &[(u32, u32, f64)]) -> Moments {
        let mut mass = 0.0;
        let mut mean = [0.0; 2];
        for &(x, y, a) in pixels {
            mass += a;
            mean[0] += a * f64::from(x);
            mean[1] += a * f64::from(y);
        }
        let mass = if mass > 0.0 { mass } else { 1.0 };
        mean = mean.map(|v| v / mass);
        let mut m = Moments {
            second: [0.0; 4],
            fourth: [0.0; 4],
            third_y: 0.0,
        };
        for &(x, y, a) in pixels {
            let (dx, dy) = (f64::from(x) - mean[0], f64::from(y) - mean[1]);
            let projections = [dx, dy, (dx + dy) * FRAC_1_SQRT_2, (dx - dy) * FRAC_1_SQRT_2];
            for (i, t) in projections.into_iter().enumerate() {
                let t2 = t * t;
                m.second[i] += a * t2 / mass;
                m.fourth[i] += a * t2 * t2 / mass;
            }
            m.third_y += a * dy * dy * dy / mass;
        }
        m
    }

    /// Kurtosis of projection `i` (x, y, x+y, x−y); 0 without spread.
    fn kurtosis(&self, i: usize) -> f64 {
        let v = self.second[i];
        if v > 0.0 {
            self.fourth[i] / (v * v)
        } else {
            0.0
        }
    }

    /// Skewness along y; 0 without spread.
    fn skewness_y(&self) -> f64 {
        let v = self.second[1];
        if v > 0.0 {
            self.third_y / v.powf(1.5)
        } else {
            0.0
        }
    }
}

fn prototype(shape: Shape) -> [f64; 5] {
    let (axis, diagonal) = projection_kurtosis(shape);
    [
        area_fraction(shape),
        row_skewness(shape),
        axis,
        diagonal - axis,
        0.0,
    ]
}

/// The nearest shape and `1 - d1/d2` (d1, d2: the weighted distances to the nearest
/// and second-nearest prototypes).
pub(crate) fn classify(geometry: &Geometry) -> (Shape, f64) {
    let distance = |p: [f64; 5]| {
        (0..5)
            .map(|i| (WEIGHTS[i] * (geometry.features[i] - p[i])).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    nearest(Shape::ALL.map(|s| (distance(prototype(s)), s)))
}
