//! The exact geometry of each shape: its signed distance field in unit coordinates
//! (what the renderer integrates into coverage), the fraction of its box it fills, and
//! the moments of its area that the judge's shape prototypes are made of.

use super::scene::Object;
use super::vocab::Shape;

/// The fraction of its square box a shape covers.
pub(crate) fn area_fraction(shape: Shape) -> f64 {
    match shape {
        Shape::Circle => std::f64::consts::FRAC_PI_4,
        Shape::Square => 1.0,
        Shape::Triangle | Shape::Diamond => 0.5,
    }
}

/// The kurtosis of the shape's area projected on the axes and on the diagonals. A
/// square projects to a uniform law on its sides' axes (kurtosis 9/5) and a triangular
/// one on its diagonals (12/5); the diamond is the same square turned, so the other
/// way round; a disc projects to a semicircle law (2) everywhere; a triangle projects
/// to a triangular law (12/5) in every direction, its chord length being piecewise
/// linear.
pub(crate) fn projection_kurtosis(shape: Shape) -> (f64, f64) {
    match shape {
        Shape::Circle => (2.0, 2.0),
        Shape::Square => (1.8, 2.4),
        Shape::Triangle => (2.4, 2.4),
        Shape::Diamond => (2.4, 1.8),
    }
}

/// The skewness of the shape's mass along y (y down). The upward triangle's row
/// widths grow linearly from the apex, a density `2y/h²` whose skewness is −2√2/5; the
/// other shapes are symmetric about their middle row.
pub(crate) fn row_skewness(shape: Shape) -> f64 {
    match shape {
        Shape::Triangle => -2.0 * std::f64::consts::SQRT_2 / 5.0,
        Shape::Circle | Shape::Square | Shape::Diamond => 0.0,
    }
}

/// Signed distance from `p` to the object's outline, in canvas units: negative inside.
pub(crate) fn signed_distance(obj: &Object, p: [f64; 2]) -> f64 {
    let [cx, cy] = obj.center;
    let h = obj.size / 2.0;
    match obj.shape {
        Shape::Circle => (p[0] - cx).hypot(p[1] - cy) - h,
        Shape::Square => polygon(
            &[
                [cx - h, cy - h],
                [cx + h, cy - h],
                [cx + h, cy + h],
                [cx - h, cy + h],
            ],
            p,
        ),
        Shape::Triangle => polygon(&[[cx, cy - h], [cx + h, cy + h], [cx - h, cy + h]], p),
        Shape::Diamond => polygon(&[[cx, cy - h], [cx + h, cy], [cx, cy + h], [cx - h, cy]], p),
    }
}

/// Signed distance to a simple polygon: the distance to the nearest edge, negative
/// where a ray crossing count says inside (after Inigo Quilez's `sdPolygon`).
fn polygon(v: &[[f64; 2]], p: [f64; 2]) -> f64 {
    let mut d = f64::INFINITY;
    let mut inside = false;
    for i in 0..v.len() {
        let (a, b) = (v[i], v[(i + v.len() - 1) % v.len()]);
        let e = [b[0] - a[0], b[1] - a[1]];
        let w = [p[0] - a[0], p[1] - a[1]];
        let t = ((w[0] * e[0] + w[1] * e[1]) / (e[0] * e[0] + e[1] * e[1])).clamp(0.0, 1.0);
        d = d.min((w[0] - e[0] * t).hypot(w[1] - e[1] * t));
        if (p[1] >= a[1]) != (p[1] >= b[1]) && (e[0] * w[1] > e[1] * w[0]) == (p[1] < b[1]) {
            inside = !inside;
        }
    }
    if inside { -d } else { d }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::vocab::Color;

    #[test]
    fn distances_are_signed_and_exact() {
        let obj = |shape| Object {
            shape,
            color: Color::Red,
            center: [0.5, 0.5],
            size: 0.4,
        };
        for shape in Shape::ALL {
            assert!(signed_distance(&obj(shape), [0.5, 0.55]) < 0.0, "{shape:?}");
            assert!(
                signed_distance(&obj(shape), [0.95, 0.95]) > 0.0,
                "{shape:?}"
            );
        }
        assert!((signed_distance(&obj(Shape::Square), [0.8, 0.5]) - 0.1).abs() < 1e-12);
        assert!((signed_distance(&obj(Shape::Circle), [0.5, 0.5]) + 0.2).abs() < 1e-12);
        // Above the triangle's apex, but inside its box: outside the triangle.
        assert!(signed_distance(&obj(Shape::Triangle), [0.35, 0.35]) > 0.0);
        // The diamond's corner region of the box is outside it.
        assert!(signed_distance(&obj(Shape::Diamond), [0.33, 0.33]) > 0.0);
    }
}
