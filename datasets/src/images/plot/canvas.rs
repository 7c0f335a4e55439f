//! A small RGB canvas for plots: filled rectangles and text in the 8×8 bitmap font of
//! the `font8x8` crate (public-domain glyphs as 128 × 8 bytes of data, no dependencies),
//! drawn at an integer scale. A plot needs a few dozen short ASCII labels; a bitmap font
//! draws them crisp at 2× without shaping, hinting or a font file to ship.

use font8x8::legacy::BASIC_LEGACY;
use image::{ImageEncoder, Rgb, RgbImage};

pub(crate) type Color = [u8; 3];

pub(crate) struct Canvas {
    image: RgbImage,
}

/// Side of a glyph cell at scale 1.
const GLYPH: u32 = 8;

impl Canvas {
    pub fn new(width: u32, height: u32, background: Color) -> Self {
        Canvas {
            image: RgbImage::from_pixel(width, height, Rgb(background)),
        }
    }

    /// Fill `w` × `h` at (`x`, `y`), clipped to the canvas.
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: Color) {
        let (cw, ch) = (self.image.width() as i64, self.image.height() as i64);
        for py in y.max(0)..(y + h).min(ch) {
            for px in x.max(0)..(x + w).min(cw) {
                self.image.put_pixel(px as u32, py as u32, Rgb(color));
            }
        }
    }

    /// Width of `text` drawn at `scale`.
    pub fn text_width(text: &str, scale: u32) -> i64 {
        (text.chars().count() as u32 * GLYPH * scale) as i64
    }

    /// Draw `text` with its top-left corner at (`x`, `y`); characters outside ASCII
    /// are drawn as `?`.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: u32, color: Color) {
        let s = scale as i64;
        for (i, c) in text.chars().enumerate() {
            let code = if c.is_ascii() {
                c as usize
            } else {
                '?' as usize
            };
            let left = x + i as i64 * GLYPH as i64 * s;
            for (row, bits) in BASIC_LEGACY[code].iter().enumerate() {
                for col in 0..GLYPH as i64 {
                    if bits >> col & 1 == 1 {
                        self.rect(left + col * s, y + row as i64 * s, s, s, color);
                    }
                }
            }
        }
    }

    /// The canvas as PNG bytes.
    pub fn png(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(
                self.image.as_raw(),
                self.image.width(),
                self.image.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| format!("PNG encoder: {e}"))?;
        Ok(out)
    }
}
