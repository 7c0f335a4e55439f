//! The SFT loss of a micro-batch (paper.md §2.3): token cross-entropy of the text head
//! (`lm_head`) where the next token is text and of the image head (`gen_head`) where it
//! is an image code, each label weighted by its kind, summed and divided by the number
//! of labels in the loss (weights do not enter the count). Log-softmax runs in FP32
//! whatever the compute dtype.

use super::data::{Batch, Targets};
use crate::janus::error::Result;
use crate::janus::llama::Ops;
use crate::janus::model::Janus;
use candle_core::{D, DType, Tensor};

/// A micro-batch's loss and its parts.
pub struct Loss {
    /// The weighted loss, already multiplied by the caller's scale (differentiable).
    pub loss: Tensor,
    /// Unweighted cross-entropy sums and label counts, per head (weight-0 labels left out).
    pub text_sum: f64,
    pub text_labels: usize,
    pub image_sum: f64,
    pub image_labels: usize,
}

/// (weighted sum, unweighted sum) of one head's cross-entropy over `targets`.
fn head_loss(
    hidden: &Tensor,
    targets: &Targets,
    head: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Option<(Tensor, f64)>> {
    if targets.positions.is_empty() {
        return Ok(None);
    }
    let device = hidden.device();
    let n = targets.positions.len();
    let positions = Tensor::from_slice(&targets.positions, n, device)?;
    let labels = Tensor::from_slice(&targets.targets, (n, 1), device)?;
    let weights = Tensor::from_slice(&targets.weights, n, device)?;
    let logits = head(&hidden.index_select(&positions, 0)?)?.to_dtype(DType::F32)?;
    let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let nll = log_probs.gather(&labels, 1)?.squeeze(1)?.neg()?;
    let plain = nll.sum_all()?.to_scalar::<f32>()? as f64;
    Ok(Some(((nll * weights)?.sum_all()?, plain)))
}

/// The loss of `batch` times `scale` (1 / micro-batches per step).
pub fn loss(model: &Janus, batch: &Batch, scale: f64) -> Result<Loss> {
    let embeds = model.embed_mixed(&batch.ids, &batch.is_image)?;
    let hidden = model.forward(&embeds, &batch.padding, None, Ops::Differentiable)?;
    let (b, t, h) = hidden.dims3()?;
    let flat = hidden.reshape((b * t, h))?;
    let text = head_loss(&flat, &batch.text, |x| model.text_logits(x))?;
    let image = head_loss(&flat, &batch.image, |x| model.image_logits(x))?;
    let mut total = Tensor::zeros((), DType::F32, flat.device())?;
    let (mut text_sum, mut image_sum) = (0.0, 0.0);
    if let Some((weighted, plain)) = text {
        total = (total + weighted)?;
        text_sum = plain;
    }
    if let Some((weighted, plain)) = image {
        total = (total + weighted)?;
        image_sum = plain;
    }
    let loss = (total * (scale / batch.counted.max(1) as f64))?;
    Ok(Loss {
        loss,
        text_sum,
        text_labels: batch.text.positions.len(),
        image_sum,
        image_labels: batch.image.positions.len(),
    })
}
