//! Image preparation without the engine: the bytes of one image in, a square of the
//! model's size out (Janus-Pro: 384 × 384, research/paper.md §2.4), or the reason it
//! was rejected.
//!
//! [`prepare`] runs the steps, each in its own module: [`probe`] reads the format from
//! the bytes and the size from the header and applies the checks that need no decoding
//! (the pixel limit against decompression bombs among them); `decode` decodes JPEG
//! (through `jpeg`, scaled in the DCT when the target is much smaller), PNG, GIF (first
//! frame), WebP and BMP, and applies the EXIF orientation; `resize` crops the centred
//! square and resizes it with Pillow's bicubic filter ([`resize`] resizes a whole
//! image with it, as the GRPO judge's upscale needs); `color` converts CMYK, grey and
//! alpha (on white) to RGB; `encode` writes PNG or JPEG.
//!
//! Around it: [`original`], the record of the original image kept in a row's metadata;
//! [`rejects`], the tables of rejected rows that stages write beside their output; and
//! [`plot`], histograms as PNG for reports.

mod color;
mod decode;
mod encode;
mod jpeg;
pub mod original;
pub mod plot;
mod prepare;
pub mod probe;
mod reason;
pub mod rejects;
mod resize;

pub use encode::Encoding;
pub use prepare::{Failure, Prepared, Settings, prepare, sha256_hex};
pub use probe::{Format, Header, Limits};
pub use reason::{Reason, Rejection};
pub use resize::resize;
