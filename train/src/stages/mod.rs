//! Stages that train or use a model: the patch VQ's training, the tokenize node, a
//! fresh Janus-Pro model (`model.init`), generation with Janus-Pro and its supervised
//! fine-tuning (`model.sft`).

pub mod generate;
pub mod init;
pub mod patch_vq;
pub mod sft;
pub mod tokenize;

use pipeline::Registry;

pub fn register(registry: &mut Registry) {
    registry.register(generate::Generate);
    registry.register(init::InitModel);
    registry.register(patch_vq::TrainPatchVq);
    registry.register(sft::Sft);
    registry.register(tokenize::Tokenize);
}

/// Decode encoded image bytes (PNG, JPEG) to RGB.
pub(crate) fn decode_rgb(bytes: &[u8]) -> Result<image::RgbImage, String> {
    image::load_from_memory(bytes)
        .map(|i| i.to_rgb8())
        .map_err(|e| e.to_string())
}
