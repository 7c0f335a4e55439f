//! CLIPImageProcessor's preparation of an image: resize the shortest side to the
//! model's size with Pillow's bicubic filter (the longer side to
//! `int(size · long / short)`; no resize when the shortest side already has the size),
//! centre-crop a square (offsets rounded down, as transformers' `center_crop`; OpenAI's
//! `clip.load` rounds half away from zero, so odd margins differ by one pixel), rescale
//! by 1/255 and normalise with OpenAI CLIP's mean and standard deviation.

use image::{DynamicImage, RgbImage};

/// OpenAI CLIP's per-channel mean (`OPENAI_CLIP_MEAN`).
pub const MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's per-channel standard deviation (`OPENAI_CLIP_STD`).
pub const STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// The `size` × `size` crop of `image` after the shortest-side resize, as 8-bit RGB.
pub fn resized_crop(image: &RgbImage, size: u32) -> Result<RgbImage, String> {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return Err(format!("an image of {w}×{h} pixels"));
    }
    let (short, long) = (w.min(h), w.max(h));
    let resized = if short == size {
        image.clone()
    } else {
        let long = (size as f64 * long as f64 / short as f64) as u32;
        let (nw, nh) = if w <= h { (size, long) } else { (long, size) };
        let pixels = datasets::images::resize(&DynamicImage::ImageRgb8(image.clone()), nw, nh)?;
        RgbImage::from_raw(nw, nh, pixels).ok_or("the resize returned too few pixels")?
    };
    let (w, h) = resized.dimensions();
    let (left, top) = (w.saturating_sub(size) / 2, h.saturating_sub(size) / 2);
    if w < size || h < size {
        return Err(format!(
            "a {w}×{h} image after the resize, smaller than {size}"
        ));
    }
    Ok(image::imageops::crop_imm(&resized, left, top, size, size).to_image())
}

/// A crop's pixel values, channel-major (3 × size × size), as transformers computes
/// them: `float32(v · (1/255))`, then `(x − mean) / std` in float32.
pub fn normalized(crop: &RgbImage) -> Vec<f32> {
    let (w, h) = crop.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in crop.pixels().enumerate() {
        for c in 0..3 {
            let x = (f64::from(p[c]) * (1.0 / 255.0)) as f32;
            out[c * plane + i] = (x - MEAN[c] as f32) / STD[c] as f32;
        }
    }
    out
}
