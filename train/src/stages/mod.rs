//! Stages that train or use a model: the patch VQ's training, the tokenize node, a
//! fresh Janus-Pro model (`model.init`), a released one brought in (`model.import`),
//! generation with Janus-Pro, its supervised fine-tuning (`model.sft`) and GRPO
//! (`model.grpo`).

pub mod generate;
pub mod grpo;
pub mod import;
pub mod init;
pub mod patch_vq;
pub mod sft;
pub mod tokenize;

use pipeline::Registry;

pub fn register(registry: &mut Registry) {
    registry.register(generate::Generate);
    registry.register(grpo::Grpo);
    registry.register(import::ImportModel);
    registry.register(init::InitModel);
    registry.register(patch_vq::TrainPatchVq);
    registry.register(sft::Sft);
    registry.register(tokenize::Tokenize);
}

/// Run `work` on a blocking thread inside a rayon pool of `threads` threads: candle's
/// CPU matmul splits its work over the current rayon pool, so a training keeps to the
/// threads its node was granted.
pub(crate) async fn on_threads<T: Send + 'static>(
    threads: usize,
    work: impl FnOnce() -> Result<T, pipeline::StageError> + Send + 'static,
) -> Result<T, pipeline::StageError> {
    tokio::task::spawn_blocking(move || {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| pipeline::StageError::msg(format!("training threads: {e}")))?;
        pool.install(work)
    })
    .await
    .map_err(|e| pipeline::StageError::msg(format!("training thread: {e}")))?
}

/// Decode encoded image bytes (PNG, JPEG) to RGB.
pub(crate) fn decode_rgb(bytes: &[u8]) -> Result<image::RgbImage, String> {
    image::load_from_memory(bytes)
        .map(|i| i.to_rgb8())
        .map_err(|e| e.to_string())
}
