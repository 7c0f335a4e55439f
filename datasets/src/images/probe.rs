//! What an image is before it is decoded: its format from its first bytes (never from
//! its name), its size from its header, and the checks that need nothing more (empty,
//! unsupported or mislabelled format, zero or out-of-range sides, aspect ratio, and the
//! pixel limit that stops decompression bombs before a single pixel is allocated).

use super::reason::{Reason, Rejection};
use std::fmt;

/// The formats decoded here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
    Bmp,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::WebP => "webp",
            Format::Bmp => "bmp",
        }
    }

    /// The format a file extension names (any case), if it is one of ours.
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" | "jpe" | "jfif" => Some(Format::Jpeg),
            "png" | "apng" => Some(Format::Png),
            "gif" => Some(Format::Gif),
            "webp" => Some(Format::WebP),
            "bmp" | "dib" => Some(Format::Bmp),
            _ => None,
        }
    }

    pub(crate) fn image_format(self) -> image::ImageFormat {
        match self {
            Format::Jpeg => image::ImageFormat::Jpeg,
            Format::Png => image::ImageFormat::Png,
            Format::Gif => image::ImageFormat::Gif,
            Format::WebP => image::ImageFormat::WebP,
            Format::Bmp => image::ImageFormat::Bmp,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Limits on an image's size, checked on its header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Shortest side accepted, in pixels.
    pub min_side: u32,
    /// Longest side accepted, in pixels.
    pub max_side: u32,
    /// Most pixels (width × height) accepted.
    pub max_pixels: u64,
    /// Largest longer-side / shorter-side ratio accepted.
    pub max_aspect: f64,
}

/// What the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub format: Format,
    /// As stored (before any EXIF rotation).
    pub width: u32,
    pub height: u32,
    /// The format the name claims, when that is another one of ours.
    pub mislabelled_as: Option<Format>,
}

/// The extension of a file name or path, if it has one.
fn extension(name: &str) -> Option<&str> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    file.rsplit_once('.').map(|(_, ext)| ext)
}

/// The first bytes of `bytes`, printable.
fn beginning(bytes: &[u8]) -> String {
    let text: String = bytes
        .iter()
        .take(12)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    format!("`{text}`")
}

/// Our format of an `imagesize` type, or the name of a format we do not decode.
fn ours(kind: imagesize::ImageType) -> Result<Format, String> {
    match kind {
        imagesize::ImageType::Jpeg => Ok(Format::Jpeg),
        imagesize::ImageType::Png => Ok(Format::Png),
        imagesize::ImageType::Gif => Ok(Format::Gif),
        imagesize::ImageType::Webp => Ok(Format::WebP),
        imagesize::ImageType::Bmp => Ok(Format::Bmp),
        other => Err(format!("{other:?}").to_lowercase()),
    }
}

/// The format of `bytes`, checked against the format `name` claims.
fn sniff(bytes: &[u8], name: Option<&str>, reject_mislabelled: bool) -> Result<Header, Rejection> {
    let claimed = name.and_then(extension).and_then(Format::from_extension);
    let format = match imagesize::image_type(bytes).map(ours) {
        Ok(Ok(format)) => format,
        Ok(Err(other)) => {
            return Err(Rejection::new(
                Reason::UnsupportedFormat,
                format!(
                    "the bytes are {other}, which is not decoded (jpeg, png, gif, webp, bmp are)"
                ),
            ));
        }
        Err(_) => {
            let what = format!(
                "the bytes are not an image (they begin {})",
                beginning(bytes)
            );
            return Err(match claimed {
                Some(c) => Rejection::new(Reason::Mislabelled, format!("named as {c} but {what}")),
                None => Rejection::new(Reason::UnsupportedFormat, what),
            });
        }
    };
    let mislabelled_as = claimed.filter(|c| *c != format);
    if let (Some(c), true) = (mislabelled_as, reject_mislabelled) {
        return Err(Rejection::new(
            Reason::Mislabelled,
            format!("named as {c} but the bytes are {format}"),
        ));
    }
    Ok(Header {
        format,
        width: 0,
        height: 0,
        mislabelled_as,
    })
}

/// Read and check the header of `bytes` (named `name`, if known).
pub fn probe(
    bytes: &[u8],
    name: Option<&str>,
    limits: &Limits,
    reject_mislabelled: bool,
) -> Result<Header, Rejection> {
    if bytes.is_empty() {
        return Err(Rejection::new(Reason::Empty, "zero bytes"));
    }
    let mut header = sniff(bytes, name, reject_mislabelled)?;
    let size = imagesize::blob_size(bytes).map_err(|e| match e {
        imagesize::ImageError::IoError(_) => Rejection::new(
            Reason::Truncated,
            format!(
                "the {} header ends early ({} bytes in all)",
                header.format,
                bytes.len()
            ),
        ),
        other => Rejection::new(
            Reason::Corrupt,
            format!("unreadable {} header: {other}", header.format),
        ),
    })?;
    let (w, h) = (size.width as u64, size.height as u64);
    check_size(w, h, limits)?;
    // `check_size` bounds both sides by `max_side`, a u32.
    header.width = w as u32;
    header.height = h as u32;
    Ok(header)
}

/// The checks on a declared `w` × `h`.
fn check_size(w: u64, h: u64, limits: &Limits) -> Result<(), Rejection> {
    if w == 0 || h == 0 {
        return Err(Rejection::new(
            Reason::ZeroDimensions,
            format!("the header declares {w}×{h}"),
        ));
    }
    let pixels = w * h;
    if pixels > limits.max_pixels {
        return Err(Rejection::new(
            Reason::DecompressionBomb,
            format!(
                "the header declares {w}×{h} = {pixels} pixels, over the limit of {} (max_pixels)",
                limits.max_pixels
            ),
        ));
    }
    let (short, long) = (w.min(h), w.max(h));
    let aspect = long as f64 / short as f64;
    if aspect > limits.max_aspect {
        return Err(Rejection::new(
            Reason::AspectRatio,
            format!(
                "{w}×{h} has an aspect ratio of {aspect:.2}, over {} (max_aspect)",
                limits.max_aspect
            ),
        ));
    }
    if short < limits.min_side as u64 || long > limits.max_side as u64 {
        return Err(Rejection::new(
            Reason::DimensionsOutOfRange,
            format!(
                "{w}×{h} is outside {}..={} pixels a side (min_side, max_side)",
                limits.min_side, limits.max_side
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        min_side: 16,
        max_side: 1000,
        max_pixels: 500_000,
        max_aspect: 3.0,
    };

    #[test]
    fn sizes_are_checked_in_order_of_what_says_most() {
        let reason = |w, h| check_size(w, h, &LIMITS).map_err(|r| r.reason);
        assert_eq!(reason(0, 10), Err(Reason::ZeroDimensions));
        assert_eq!(reason(30_000, 30_000), Err(Reason::DecompressionBomb));
        assert_eq!(reason(1, 100_000), Err(Reason::AspectRatio));
        assert_eq!(reason(10, 12), Err(Reason::DimensionsOutOfRange));
        assert_eq!(reason(1001, 400), Err(Reason::DimensionsOutOfRange));
        assert_eq!(reason(16, 48), Ok(()));
    }

    #[test]
    fn extensions_are_read_from_the_last_path_component() {
        assert_eq!(extension("a.b/cat.JPG"), Some("JPG"));
        assert_eq!(extension("a.b/cat"), None);
        assert_eq!(Format::from_extension("JPEG"), Some(Format::Jpeg));
        assert_eq!(Format::from_extension("tiff"), None);
    }

    #[test]
    fn text_named_as_an_image_is_mislabelled_and_unnamed_text_unsupported() {
        let text = b"hello, this is not a picture";
        let r = probe(text, Some("x/cat.jpg"), &LIMITS, false).unwrap_err();
        assert_eq!(r.reason, Reason::Mislabelled);
        assert!(r.detail.contains("`hello, this `"), "{}", r.detail);
        let r = probe(text, None, &LIMITS, false).unwrap_err();
        assert_eq!(r.reason, Reason::UnsupportedFormat);
        let tiff = b"II*\0\x08\0\0\0\0\0\0\0\0\0\0\0";
        let r = probe(tiff, Some("a.tif"), &LIMITS, false).unwrap_err();
        assert_eq!(r.reason, Reason::UnsupportedFormat);
        assert!(r.detail.contains("tiff"), "{}", r.detail);
    }
}
