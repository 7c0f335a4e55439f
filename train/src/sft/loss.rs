//! The SFT loss of a micro-batch (paper.md §2.3): the cross-entropy of each label
//! ([`crate::core::logprobs`]: the text head where the next token is text, the image
//! head where it is an image code), weighted by its kind, summed and divided by the
//! number of labels in the loss (weights do not enter the count).

use crate::core::batch::Batch;
use crate::core::logprobs::{HeadLogProbs, Options, log_probs};
use crate::janus::error::Result;
use crate::janus::llama::Ops;
use crate::janus::model::Janus;
use candle_core::{DType, Tensor};

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

/// (weighted negative log-likelihood, unweighted sum) of one head's labels.
fn head_loss(head: Option<HeadLogProbs>, weights: &[f32]) -> Result<Option<(Tensor, f64)>> {
    let Some(head) = head else { return Ok(None) };
    let nll = head.log_probs.neg()?;
    let plain = nll.sum_all()?.to_scalar::<f32>()? as f64;
    let weights = Tensor::from_slice(weights, weights.len(), nll.device())?;
    Ok(Some(((nll * weights)?.sum_all()?, plain)))
}

/// The loss of `batch` times `scale` (1 / micro-batches per step).
pub fn loss(model: &Janus, batch: &Batch, scale: f64) -> Result<Loss> {
    loss_with(model, batch, scale, Ops::Fused)
}

/// [`loss`] with the model's ops chosen (the benchmark compares them).
pub fn loss_with(model: &Janus, batch: &Batch, scale: f64, ops: Ops) -> Result<Loss> {
    let options = Options {
        ops,
        ..Options::default()
    };
    let lp = log_probs(model, batch, options)?;
    let text = head_loss(lp.text, &batch.text.weights)?;
    let image = head_loss(lp.image, &batch.image.weights)?;
    let mut total = Tensor::zeros((), DType::F32, model.device())?;
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
