//! Encoding the prepared RGB square: PNG (lossless), or JPEG at a quality with 4:2:0
//! chroma (the default of Pillow and libjpeg) or full 4:4:4 chroma.

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

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
    let mut out = Vec::with_capacity(rgb.len() / 4);
    match encoding {
        Encoding::Png => {
            let png = PngEncoder::new_with_quality(
                &mut out,
                CompressionType::Default,
                FilterType::Adaptive,
            );
            png.write_image(rgb, side, side, image::ExtendedColorType::Rgb8)
                .map_err(|e| format!("PNG encoder: {e}"))?;
        }
        Encoding::Jpeg {
            quality,
            full_chroma,
        } => {
            let side =
                u16::try_from(side).map_err(|_| format!("{side} pixels is too wide for JPEG"))?;
            let mut jpeg = Encoder::new(&mut out, quality);
            jpeg.set_sampling_factor(if full_chroma {
                SamplingFactor::F_1_1
            } else {
                SamplingFactor::F_2_2
            });
            jpeg.encode(rgb, side, side, ColorType::Rgb)
                .map_err(|e| format!("JPEG encoder: {e}"))?;
        }
    }
    Ok(out)
}
