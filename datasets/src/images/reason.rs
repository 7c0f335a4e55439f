//! Why an image is quarantined: a closed set of reasons with stable names (they are the
//! `reason` column of quarantine tables and the suffix of the stage's counters), each
//! with a detail that says what was found in that image.

use std::fmt;

/// The reason an image was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// No bytes, or zero bytes.
    Empty,
    /// An image format that is not decoded here (TIFF, AVIF, HEIF, …), or bytes of no
    /// known format under a name that claims none.
    UnsupportedFormat,
    /// The name claims an image format that the bytes are not.
    Mislabelled,
    /// The data ends before the image does.
    Truncated,
    /// The data is damaged (bad checksum, invalid codes, inconsistent headers).
    Corrupt,
    /// The header declares a width or height of zero.
    ZeroDimensions,
    /// A side shorter than the minimum or longer than the maximum.
    DimensionsOutOfRange,
    /// More pixels than the limit, from the header, before anything is decoded.
    DecompressionBomb,
    /// Longer side over shorter side beyond the limit.
    AspectRatio,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Empty,
        Reason::UnsupportedFormat,
        Reason::Mislabelled,
        Reason::Truncated,
        Reason::Corrupt,
        Reason::ZeroDimensions,
        Reason::DimensionsOutOfRange,
        Reason::DecompressionBomb,
        Reason::AspectRatio,
    ];

    /// The name written in tables and counters.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::UnsupportedFormat => "unsupported_format",
            Reason::Mislabelled => "mislabelled",
            Reason::Truncated => "truncated",
            Reason::Corrupt => "corrupt",
            Reason::ZeroDimensions => "zero_dimensions",
            Reason::DimensionsOutOfRange => "dimensions_out_of_range",
            Reason::DecompressionBomb => "decompression_bomb",
            Reason::AspectRatio => "aspect_ratio",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rejected image: the reason and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}
