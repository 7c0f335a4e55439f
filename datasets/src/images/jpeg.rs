//! JPEG decoding with two decoders. A photo at least twice the target's side is decoded
//! by `jpeg-decoder`, which can scale in the DCT: at 1/2, 1/4 or 1/8 of its size (the
//! smallest scale whose shorter side still reaches the target), as Pillow's
//! `Image.draft` does, so that the inverse DCT and colour conversion run on a fraction of
//! the pixels. Any other YCbCr or grey JPEG is decoded in full by `zune-jpeg` (SIMD, one
//! thread, about a quarter less CPU than `jpeg-decoder` on photos) in strict mode, where
//! it fails on truncated data instead of filling in grey. Whatever `zune-jpeg` does not
//! take (CMYK, 12-bit, or anything it finds wrong) goes to `jpeg-decoder`, whose verdict
//! stands: an image is accepted or rejected as `jpeg-decoder` alone would. CMYK (Adobe,
//! inverted, as Photoshop and Pillow write it) is converted to RGB with Pillow's formula.

use super::color::cmyk_to_rgb;
use super::decode::{Decoded, decode_error};
use super::reason::{Reason, Rejection};
use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer};
use jpeg_decoder::{Decoder, PixelFormat};
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// The EXIF orientation in a raw EXIF block (from the TIFF header on), if any.
fn orientation(exif: Option<&[u8]>) -> Orientation {
    exif.and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms)
}

/// Decode `bytes` (declared `width` × `height`), at a reduced scale if `scale_to` (the
/// target's side) allows it.
pub(crate) fn decode(
    bytes: &[u8],
    (width, height): (u32, u32),
    scale_to: Option<u32>,
    max_bytes: usize,
) -> Result<Decoded, Rejection> {
    let reducible = scale_to.is_some_and(|side| width.min(height) >= side.saturating_mul(2));
    if !reducible && let Some(decoded) = with_zune(bytes, (width, height)) {
        return Ok(decoded);
    }
    with_jpeg_decoder(bytes, scale_to, max_bytes)
}

/// Decode a YCbCr or grey JPEG in full with `zune-jpeg`; `None` for anything else, and
/// for any error (then `jpeg-decoder` decides).
fn with_zune(bytes: &[u8], (width, height): (u32, u32)) -> Option<Decoded> {
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(width as usize)
        .set_max_height(height as usize);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().ok()?;
    let out = match decoder.input_colorspace()? {
        ColorSpace::YCbCr | ColorSpace::RGB => ColorSpace::RGB,
        ColorSpace::Luma => ColorSpace::Luma,
        _ => return None,
    };
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(out));
    let pixels = decoder.decode().ok()?;
    let (w, h) = decoder.dimensions()?;
    let (w, h) = (u32::try_from(w).ok()?, u32::try_from(h).ok()?);
    let image = match out {
        ColorSpace::Luma => DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, pixels)?),
        _ => DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, pixels)?),
    };
    let orientation = orientation(decoder.exif().map(Vec::as_slice));
    Some(Decoded { image, orientation })
}

/// Decode with `jpeg-decoder`, at a reduced scale if `scale_to` allows it.
fn with_jpeg_decoder(
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
    let orientation = orientation(decoder.exif_data());
    Ok(Decoded { image, orientation })
}
