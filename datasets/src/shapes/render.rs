//! Rasterisation: a scene to an anti-aliased RGB image (each pixel's coverage taken
//! from the shape's exact signed distance, a box filter across the edge), and PNG
//! encoding. The same scene and size give the same pixels and the same PNG bytes.

use super::ShapesError;
use super::geometry::signed_distance;
use super::scene::Scene;
use super::vocab::BACKGROUND;
use image::codecs::png::PngEncoder;
use image::{ImageEncoder, Rgb, RgbImage};

/// The default image side in pixels.
pub const DEFAULT_SIZE: u32 = 64;

/// Renders `scene` on a `size`×`size` image. Only sums, products and square roots
/// enter the pixel values, all exactly rounded in IEEE arithmetic, so the pixels do
/// not depend on the platform.
pub fn render(scene: &Scene, size: u32) -> RgbImage {
    let mut image = RgbImage::from_pixel(size, size, Rgb(BACKGROUND));
    let s = f64::from(size);
    for obj in &scene.objects {
        let bbox = obj.bbox(size);
        // The box with one pixel of slack on each side for the anti-aliased edge.
        let from = |v: f64| (v.floor() - 1.0).clamp(0.0, s) as u32;
        let to = |v: f64| (v.ceil() + 1.0).clamp(0.0, s) as u32;
        let (x0, x1) = (from(bbox.x1), to(bbox.x2));
        let (y0, y1) = (from(bbox.y1), to(bbox.y2));
        let color = obj.color.rgb();
        for y in y0..y1 {
            for x in x0..x1 {
                let p = [(f64::from(x) + 0.5) / s, (f64::from(y) + 0.5) / s];
                let coverage = (0.5 - signed_distance(obj, p) * s).clamp(0.0, 1.0);
                if coverage > 0.0 {
                    let px = image.get_pixel_mut(x, y);
                    for (c, &target) in px.0.iter_mut().zip(&color) {
                        let v = f64::from(*c) + (f64::from(target) - f64::from(*c)) * coverage;
                        *c = v.round() as u8;
                    }
                }
            }
        }
    }
    image
}

/// Encodes an image as PNG (deterministic for the same pixels).
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>, ShapesError> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes).write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(bytes)
}

/// [`render`] then [`encode_png`].
pub fn render_png(scene: &Scene, size: u32) -> Result<Vec<u8>, ShapesError> {
    encode_png(&render(scene, size))
}
