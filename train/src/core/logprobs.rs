//! Per-token log-probabilities (and entropies) of a batch's labels: one forward of the
//! model, each label's logits from the head its next token calls for (`lm_head` for
//! text, `gen_head` for image codes), log-softmax in FP32 whatever the compute dtype.
//! SFT weighs them into a cross-entropy; GRPO takes ratios and entropies from them.
//!
//! Logits may be clamped (GRPO clamps to ±30 before the log-softmax, as
//! ReasonGen-R1's actor does; the clamp also zeroes the gradient beyond it). The
//! entropy of a label's distribution is over its head's vocabulary (the image head's
//! is the codebook), `−Σ p·log p` from the same clamped log-softmax, differentiable.
//! With [`Ops::Fused`] (the default) on the CPU, both come from one fused op
//! ([`crate::janus::fused::log_probs`]); the composite log-softmax is its oracle.

use super::batch::{Batch, Targets};
use crate::janus::error::Result;
use crate::janus::fused::log_probs::label_log_probs;
use crate::janus::llama::Ops;
use crate::janus::model::Janus;
use candle_core::{D, DType, Tensor};

/// What to compute beside the log-probabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Options {
    /// Clamp the logits to ±this before the log-softmax.
    pub clamp: Option<f64>,
    /// Also each label's entropy.
    pub entropy: bool,
    /// The model's ops (and the log-softmax's: fused or composite).
    pub ops: Ops,
}

/// One head's labels: the log-probability of each target, and its entropy if asked
/// ([n] F32, in the batch's label order).
pub struct HeadLogProbs {
    pub log_probs: Tensor,
    pub entropy: Option<Tensor>,
}

/// Both heads' labels of a batch; `None` for a head with no labels.
pub struct LogProbs {
    pub text: Option<HeadLogProbs>,
    pub image: Option<HeadLogProbs>,
}

fn head(
    hidden: &Tensor,
    targets: &Targets,
    options: Options,
    head: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Option<HeadLogProbs>> {
    if targets.positions.is_empty() {
        return Ok(None);
    }
    let device = hidden.device();
    let n = targets.positions.len();
    let positions = Tensor::from_slice(&targets.positions, n, device)?;
    let logits = head(&hidden.index_select(&positions, 0)?)?;
    label_values(&logits, &targets.targets, options).map(Some)
}

/// The log-probability of each label under its row of `logits` ([n, vocab]), and the
/// row's entropy if asked.
pub(crate) fn label_values(
    logits: &Tensor,
    labels: &[u32],
    options: Options,
) -> Result<HeadLogProbs> {
    let mut logits = logits.to_dtype(DType::F32)?;
    if let Some(c) = options.clamp {
        logits = logits.clamp(-c, c)?;
    }
    if options.ops.on(logits.device(), DType::F32) == Ops::Fused {
        let both = label_log_probs(&logits, labels)?;
        let column = |i: usize| both.narrow(1, i, 1)?.squeeze(1);
        return Ok(HeadLogProbs {
            log_probs: column(0)?,
            entropy: options.entropy.then(|| column(1)).transpose()?,
        });
    }
    let labels = Tensor::from_slice(labels, (labels.len(), 1), logits.device())?;
    let all = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let log_probs = all.gather(&labels, 1)?.squeeze(1)?;
    let entropy = if options.entropy {
        Some((all.exp()? * &all)?.sum(D::Minus1)?.neg()?)
    } else {
        None
    };
    Ok(HeadLogProbs { log_probs, entropy })
}

/// One forward of `model` over `batch` (differentiable), and its labels' values.
pub fn log_probs(model: &Janus, batch: &Batch, options: Options) -> Result<LogProbs> {
    let embeds = model.embed_mixed(&batch.ids, &batch.is_image)?;
    let hidden = model.forward(&embeds, &batch.padding, None, options.ops)?;
    let (b, t, h) = hidden.dims3()?;
    let flat = hidden.reshape((b * t, h))?;
    Ok(LogProbs {
        text: head(&flat, &batch.text, options, |x| model.text_logits(x))?,
        image: head(&flat, &batch.image, options, |x| model.image_logits(x))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(logits: [f32; 4], label: u32, clamp: Option<f64>, ops: Ops) -> (Vec<f32>, Vec<f32>) {
        let t = Tensor::new(&[logits], &Device::Cpu).unwrap();
        let options = Options {
            clamp,
            entropy: true,
            ops,
        };
        let h = label_values(&t, &[label], options).unwrap();
        (
            h.log_probs.to_vec1().unwrap(),
            h.entropy.unwrap().to_vec1().unwrap(),
        )
    }

    #[test]
    fn log_probs_and_entropies_by_hand() {
        for ops in [Ops::Fused, Ops::Composite] {
            by_hand(ops);
        }
    }

    fn by_hand(ops: Ops) {
        // Uniform logits: log p = −ln 4 and H = ln 4.
        let (lp, h) = values([0.0; 4], 2, None, ops);
        assert!((lp[0] + 4f32.ln()).abs() < 1e-6 && (h[0] - 4f32.ln()).abs() < 1e-6);
        // p ∝ (e², 1, 1, 1): direct −Σ p ln p.
        let e2 = 2f32.exp();
        let z = e2 + 3.0;
        let p = [e2 / z, 1.0 / z, 1.0 / z, 1.0 / z];
        let direct: f32 = -p.iter().map(|p| p * p.ln()).sum::<f32>();
        let (lp, h) = values([2.0, 0.0, 0.0, 0.0], 0, None, ops);
        assert!((lp[0] - p[0].ln()).abs() < 1e-6, "{lp:?}");
        assert!((h[0] - direct).abs() < 1e-6, "{h:?} vs {direct}");
        // Clamped at ±30, as the GRPO actor: a logit of 100 counts as 30.
        let (lp, _) = values([100.0, 0.0, 0.0, 0.0], 1, Some(30.0), ops);
        let want = -(30f32.exp() + 3.0).ln();
        assert!((lp[0] - want).abs() < 1e-4, "{lp:?} vs {want}");
    }
}
