//! Pixel conversions towards 8-bit RGB: CMYK with Pillow's formula, alpha composited on
//! white, grey expanded.

use image::{DynamicImage, GrayImage, RgbImage};

/// Pillow's CMYK → RGB (`cmyk2rgb`): each channel is `(255 - k)(255 - c) / 255`, from
/// samples already un-inverted (as `jpeg-decoder` hands out Adobe CMYK).
pub(crate) fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let nk = 255 - px[3] as u32;
        for &c in &px[..3] {
            // MULDIV255(c, nk) as Pillow rounds it.
            let t = c as u32 * nk + 128;
            rgb.push((nk - ((t >> 8) + t) / 256) as u8);
        }
    }
    rgb
}

/// `value` over white at `alpha` (both 0..=255), rounded.
fn over_white(value: u8, alpha: u8) -> u8 {
    let (v, a) = (value as u32, alpha as u32);
    ((v * a + 255 * (255 - a) + 127) / 255) as u8
}

/// Interleaved pixels of `channels` channels, the last of them alpha, composited on
/// white: one channel fewer.
fn composite(pixels: &[u8], channels: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(pixels.len() / channels * (channels - 1));
    for px in pixels.chunks_exact(channels) {
        let (colour, alpha) = px.split_at(channels - 1);
        for &v in colour {
            out.push(over_white(v, alpha[0]));
        }
    }
    out
}

/// An 8-bit image as grey or RGB, alpha composited on white.
pub(crate) fn flatten(image: DynamicImage) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let flat = match &image {
        DynamicImage::ImageLumaA8(la) => {
            GrayImage::from_raw(w, h, composite(la.as_raw(), 2)).map(DynamicImage::ImageLuma8)
        }
        DynamicImage::ImageRgba8(rgba) => {
            RgbImage::from_raw(w, h, composite(rgba.as_raw(), 4)).map(DynamicImage::ImageRgb8)
        }
        _ => None,
    };
    flat.unwrap_or(image)
}

/// Grey pixels as RGB.
pub(crate) fn grey_to_rgb(grey: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(grey.len() * 3);
    for &g in grey {
        rgb.extend_from_slice(&[g, g, g]);
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_follows_pillow() {
        // Values Pillow 13 gives for these CMYK pixels (`Image.convert("RGB")`).
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 0]), vec![255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 0]), vec![0, 0, 0]);
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 255]), vec![0, 0, 0]);
        assert_eq!(cmyk_to_rgb(&[115, 201, 238, 0]), vec![140, 54, 17]);
        assert_eq!(cmyk_to_rgb(&[8, 4, 2, 0]), vec![247, 251, 253]);
    }

    #[test]
    fn alpha_is_composited_on_white() {
        let rgba =
            image::RgbaImage::from_raw(3, 1, vec![10, 20, 30, 255, 10, 20, 30, 0, 0, 0, 0, 128])
                .unwrap();
        let flat = flatten(DynamicImage::ImageRgba8(rgba));
        assert_eq!(flat.as_bytes(), [10, 20, 30, 255, 255, 255, 127, 127, 127]);
        let la = image::GrayAlphaImage::from_raw(2, 1, vec![40, 0, 40, 255]).unwrap();
        assert_eq!(flatten(DynamicImage::ImageLumaA8(la)).as_bytes(), [255, 40]);
        assert_eq!(grey_to_rgb(&[7, 9]), vec![7, 7, 7, 9, 9, 9]);
    }
}
