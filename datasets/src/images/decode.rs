//! Decoding by the format the bytes are (see [`super::probe`]): JPEG through
//! [`super::jpeg`], PNG, GIF (its first frame), WebP and BMP through the `image` crate
//! under memory limits that back up the header check. The result is 8 bits a sample,
//! grey or RGB with or without alpha, turned upright by its EXIF orientation. Decoder
//! errors become quarantine reasons: `truncated` where the data ran out, `corrupt`
//! otherwise, `decompression_bomb` where the decoder would exceed the memory limit.

use super::probe::{Format, Header};
use super::reason::{Reason, Rejection};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};
use std::error::Error;
use std::io::Cursor;

/// A decoded image and the orientation its metadata asks for.
pub(crate) struct Decoded {
    pub image: DynamicImage,
    pub orientation: Orientation,
}

/// Did `e` (or what caused it) run out of data?
fn ran_out(e: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::UnexpectedEof
        {
            return true;
        }
        let text = c.to_string().to_lowercase();
        if [
            "unexpected end",
            "unexpected eof",
            "end of file",
            "truncated",
        ]
        .iter()
        .any(|s| text.contains(s))
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The rejection for a decoder error on a `format` image.
pub(crate) fn decode_error(format: &str, e: &(dyn Error + 'static)) -> Rejection {
    if let Some(ImageError::Limits(limit)) = e.downcast_ref::<ImageError>() {
        return Rejection::new(
            Reason::DecompressionBomb,
            format!("decoding the {format} image would exceed the memory limit: {limit}"),
        );
    }
    if ran_out(e) {
        Rejection::new(
            Reason::Truncated,
            format!("the data ends before the image does ({format} decoder: {e})"),
        )
    } else {
        Rejection::new(Reason::Corrupt, format!("{format} decoder: {e}"))
    }
}

/// The same image at 8 bits a sample: grey, grey + alpha, RGB or RGBA.
fn eight_bit(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma8(image.to_luma8()),
        DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLumaA8(image.to_luma_alpha8()),
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

/// Decode with the `image` crate, allocating at most `max_bytes`.
fn with_image_crate(
    bytes: &[u8],
    format: Format,
    header: &Header,
    max_bytes: u64,
) -> Result<Decoded, Rejection> {
    let fail = |e: ImageError| decode_error(format.name(), &e);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut limits = image::Limits::no_limits();
    limits.max_image_width = Some(header.width.max(1));
    limits.max_image_height = Some(header.height.max(1));
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(fail)?;
    let orientation = decoder.orientation().map_err(fail)?;
    let image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    Ok(Decoded { image, orientation })
}

/// Decode an image whose header passed the checks. JPEGs are decoded at a reduced
/// scale when `scale_to` is given and allows it; `max_pixels` bounds what decoders
/// allocate (the header check stops bombs first; this stops a lying header).
pub(crate) fn decode(
    bytes: &[u8],
    header: &Header,
    scale_to: Option<u32>,
    max_pixels: u64,
) -> Result<Decoded, Rejection> {
    // Up to 8 bytes a pixel (RGBA at 16 bits), and room for the decoders' own tables.
    let max_bytes = max_pixels.saturating_mul(8).saturating_add(64 << 20);
    let mut decoded = match header.format {
        Format::Jpeg => super::jpeg::decode(
            bytes,
            (header.width, header.height),
            scale_to,
            usize::try_from(max_bytes).unwrap_or(usize::MAX),
        )?,
        format => with_image_crate(bytes, format, header, max_bytes)?,
    };
    decoded.image = eight_bit(decoded.image);
    decoded.image.apply_orientation(decoded.orientation);
    Ok(decoded)
}
