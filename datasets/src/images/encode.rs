//! Encoding the prepared RGB square: PNG (lossless), or JPEG at a quality with 4:2:0
//! chroma (the default of Pillow and libjpeg) or full 4:4:4 chroma, by libjpeg-turbo's
//! TurboJPEG API (the encoder Pillow itself links; on the benchmark's photos at quality 95
//! it took 0.65 ms an image where the pure-Rust `jpeg-encoder` took 1.63 ms).

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

/// The encoding of prepared images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Png,
    Jpeg {
        /// 1..=100.
        quality: u8,
        /// Keep chroma at full resolution (4:4:4) instead of halving it both ways.
        full_chroma: bool,
    },
}

impl Encoding {
    /// The file extension of the encoding.
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Png => "png",
            Encoding::Jpeg { .. } => "jpg",
        }
    }
}

/// Encode `rgb` (`side` × `side`, 8-bit RGB).
pub(crate) fn encode(rgb: &[u8], side: u32, encoding: Encoding) -> Result<Vec<u8>, String> {
    match encoding {
        Encoding::Png => {
            let mut out = Vec::with_capacity(rgb.len() / 4);
            let png = PngEncoder::new_with_quality(
                &mut out,
                CompressionType::Default,
                FilterType::Adaptive,
            );
            png.write_image(rgb, side, side, image::ExtendedColorType::Rgb8)
                .map_err(|e| format!("PNG encoder: {e}"))?;
            Ok(out)
        }
        Encoding::Jpeg {
            quality,
            full_chroma,
        } => {
            let fail = |e: turbojpeg::Error| format!("JPEG encoder: {e}");
            let mut jpeg = Compressor::new().map_err(fail)?;
            jpeg.set_quality(i32::from(quality)).map_err(fail)?;
            jpeg.set_subsamp(if full_chroma {
                Subsamp::None
            } else {
                Subsamp::Sub2x2
            })
            .map_err(fail)?;
            let side = side as usize;
            if rgb.len() != 3 * side * side {
                return Err(format!(
                    "JPEG encoder: {} bytes for a {side} x {side} RGB image",
                    rgb.len()
                ));
            }
            let image = Image {
                pixels: rgb,
                width: side,
                pitch: 3 * side,
                height: side,
                format: PixelFormat::RGB,
            };
            jpeg.compress_to_vec(image).map_err(fail)
        }
    }
}
