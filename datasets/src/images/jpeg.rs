//! JPEG decoding with `jpeg-decoder`, which can scale in the DCT: a photo much larger
//! than the target is decoded at 1/2, 1/4 or 1/8 of its size (the smallest scale whose
//! shorter side still reaches the target), as Pillow's `Image.draft` does, so that the
//! inverse DCT and colour conversion run on a fraction of the pixels. It also fails on
//! truncated data, where other decoders fill in grey. CMYK (Adobe, inverted, as
//! Photoshop and Pillow write it) is converted to RGB with Pillow's formula.

use super::color::cmyk_to_rgb;
use super::decode::{Decoded, decode_error};
use super::reason::{Reason, Rejection};
use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer};
use jpeg_decoder::{Decoder, PixelFormat};

/// Decode `bytes`, at a reduced scale if `scale_to` (the target's side) allows it.
pub(crate) fn decode(
    bytes: &[u8],
    scale_to: Option<u32>,
    max_bytes: usize,
) -> Result<Decoded, Rejection> {
    let mut decoder = Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(max_bytes);
    let fail = |e: jpeg_decoder::Error| decode_error("jpeg", &e);
    decoder.read_info().map_err(fail)?;
    if let (Some(side), Some(info)) = (scale_to, decoder.info()) {
        // The decoder picks the smallest scale at which either side reaches what is
        // asked; asking the impossible of the longer side leaves the shorter side.
        let side = side.min(u16::MAX as u32) as u16;
        let ask = if info.width <= info.height {
            (side, u16::MAX)
        } else {
            (u16::MAX, side)
        };
        decoder.scale(ask.0, ask.1).map_err(fail)?;
    }
    let pixels = decoder.decode().map_err(fail)?;
    let corrupt = |why: &str| Rejection::new(Reason::Corrupt, format!("jpeg decoder: {why}"));
    let info = decoder.info().ok_or_else(|| corrupt("no frame header"))?;
    let (w, h) = (info.width as u32, info.height as u32);
    let shape = || corrupt("the decoded pixels do not fill the frame");
    let image = match info.pixel_format {
        PixelFormat::L8 => {
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, pixels).ok_or_else(shape)?)
        }
        PixelFormat::L16 => {
            return Err(Rejection::new(
                Reason::UnsupportedFormat,
                "a grey JPEG of more than 8 bits a sample (lossless or 12-bit), which is not decoded",
            ));
        }
        PixelFormat::RGB24 => {
            DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, pixels).ok_or_else(shape)?)
        }
        PixelFormat::CMYK32 => DynamicImage::ImageRgb8(
            ImageBuffer::from_raw(w, h, cmyk_to_rgb(&pixels)).ok_or_else(shape)?,
        ),
    };
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    Ok(Decoded { image, orientation })
}
