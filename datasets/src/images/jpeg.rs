//! JPEG decoding with two decoders. A YCbCr, RGB or grey JPEG is decoded by libjpeg-turbo
//! (the decoder Pillow links), scaled in the DCT when `scale_to` (the target's side) is
//! given: at the smallest of its scales, 1/8 to 8/8 in steps of 1/8, whose shorter side
//! still reaches the target, so that the inverse DCT, the colour conversion and the resize
//! run on fewer pixels (Pillow's `Image.draft` scales by 1/2, 1/4 or 1/8 only).
//! Whatever libjpeg-turbo does not take (CMYK, 12-bit), or finds wrong, even where it
//! would only warn (a truncated file, which it fills in with grey), goes to
//! `jpeg-decoder`, whose verdict stands: an image is accepted or rejected as
//! `jpeg-decoder` alone would. `jpeg-decoder` also reads the EXIF orientation, from the
//! headers alone, for what libjpeg-turbo decodes. CMYK (Adobe, inverted, as Photoshop and
//! Pillow write it) is converted to RGB with Pillow's formula.

use super::color::cmyk_to_rgb;
use super::decode::{Decoded, decode_error};
use super::reason::{Reason, Rejection};
use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer};
use jpeg_decoder::{Decoder, PixelFormat};
use turbojpeg::{Colorspace, Decompressor, Image, ScalingFactor};

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
    let fits = (width as usize)
        .saturating_mul(height as usize)
        .saturating_mul(3)
        <= max_bytes;
    if fits && let Some(decoded) = with_turbo(bytes, scale_to) {
        return Ok(decoded);
    }
    with_jpeg_decoder(bytes, scale_to, max_bytes)
}

/// The smallest number of eighths at which `short` reaches `side` (8 when none does).
fn eighths(short: usize, side: usize) -> usize {
    (1..8)
        .find(|m| (short * m).div_ceil(8) >= side)
        .unwrap_or(8)
}

/// Decode a YCbCr, RGB or grey JPEG with libjpeg-turbo, scaled by eighths if `scale_to`
/// allows it; `None` for anything else, and for any error or warning (then
/// `jpeg-decoder` decides).
fn with_turbo(bytes: &[u8], scale_to: Option<u32>) -> Option<Decoded> {
    let mut decoder = Decompressor::new().ok()?;
    let header = decoder.read_header(bytes).ok()?;
    let format = match header.colorspace {
        Colorspace::YCbCr | Colorspace::RGB => turbojpeg::PixelFormat::RGB,
        Colorspace::Gray => turbojpeg::PixelFormat::GRAY,
        _ => return None,
    };
    if header.is_lossless {
        return None;
    }
    let short = header.width.min(header.height);
    let m = scale_to.map_or(8, |side| eighths(short, side as usize));
    let factor = ScalingFactor::new(m, 8);
    decoder.set_scaling_factor(factor).ok()?;
    let scaled = header.scaled(factor);
    let (w, h, channels) = (scaled.width, scaled.height, format.size());
    let mut pixels = vec![0; w * h * channels];
    let image = Image {
        pixels: pixels.as_mut_slice(),
        width: w,
        pitch: w * channels,
        height: h,
        format,
    };
    decoder.decompress(bytes, image).ok()?;
    let (w, h) = (u32::try_from(w).ok()?, u32::try_from(h).ok()?);
    let image = match format {
        turbojpeg::PixelFormat::GRAY => {
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, pixels)?)
        }
        _ => DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, pixels)?),
    };
    let mut headers = Decoder::new(bytes);
    headers.read_info().ok()?;
    let orientation = orientation(headers.exif_data());
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
