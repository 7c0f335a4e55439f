//! The square crop: the centred square of side `min(w, h)` resized to `size` × `size`
//! with Pillow's bicubic filter (Keys' cubic, a = −0.5, widened by the scale when
//! shrinking), through `fast_image_resize`'s SIMD convolution. It is what Pillow
//! computes for `img.resize((size, size), Image.BICUBIC, box=square)`: resizing the
//! shorter side to `size` and centre-cropping, without rounding the longer side, and
//! with the pixels just outside the square under the filter's edge, as Pillow has them.
//!
//!
//! The two passes run in Pillow's order, the first one's result rounded and clipped to
//! 8 bits: horizontal first, unless the height shrinks by more than twice as many
//! pixels as the width (then vertical first: Pillow 13, python-pillow/Pillow#9549).
//! The order matters by several levels wherever the cubic overshoots at a hard edge,
//! and `fast_image_resize` alone picks its own (vertical first for 8-bit images), so
//! the passes are two calls here.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;

/// The square of `image` (grey or RGB, 8 bits a sample) at `size`: interleaved pixels.
pub(crate) fn square(image: &DynamicImage, size: u32) -> Result<Vec<u8>, String> {
    let (w, h) = (image.width() as f64, image.height() as f64);
    let side = w.min(h);
    let crop = ((w - side) / 2.0, (h - side) / 2.0, side, side);
    bicubic(image, crop, (size, size))
}

/// The whole of `image` resized to `width` × `height` with Pillow's bicubic filter
/// (`img.resize((width, height), Image.BICUBIC)`): interleaved pixels.
pub fn resize(image: &DynamicImage, width: u32, height: u32) -> Result<Vec<u8>, String> {
    let crop = (0.0, 0.0, image.width() as f64, image.height() as f64);
    bicubic(image, crop, (width, height))
}

/// The box `(left, top, width, height)` of `image` resized to `size`, in two passes in
/// Pillow's order.
fn bicubic(
    image: &DynamicImage,
    (left, top, cw, ch): (f64, f64, f64, f64),
    (ow, oh): (u32, u32),
) -> Result<Vec<u8>, String> {
    let pixel_type = match image.color().channel_count() {
        1 => PixelType::U8,
        3 => PixelType::U8x3,
        n => return Err(format!("cannot resize pixels of {n} channels")),
    };
    let (w, h) = (image.width(), image.height());
    let src = ImageRef::new(w, h, image.as_bytes(), pixel_type).map_err(|e| e.to_string())?;
    let bicubic = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    let (across, down) = (ow as i64 - w as i64, oh as i64 - h as i64);
    let vertical_first = down < 0 && -down > 2 * -across;
    // The first pass resizes one side of the whole image, the second the other side.
    let (first_size, first, second) = if vertical_first {
        (
            (w, oh),
            bicubic.crop(0.0, top, w as f64, ch),
            bicubic.crop(left, 0.0, cw, oh as f64),
        )
    } else {
        (
            (ow, h),
            bicubic.crop(left, 0.0, cw, h as f64),
            bicubic.crop(0.0, top, ow as f64, ch),
        )
    };
    let mut resizer = Resizer::new();
    let mut half = Image::new(first_size.0, first_size.1, pixel_type);
    resizer
        .resize(&src, &mut half, &first)
        .map_err(|e| e.to_string())?;
    let mut dst = Image::new(ow, oh, pixel_type);
    resizer
        .resize(&half, &mut dst, &second)
        .map_err(|e| e.to_string())?;
    Ok(dst.into_vec())
}
