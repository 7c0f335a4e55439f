//! GRPO's loss of one micro-batch (paper.md §3.3): each response token's ratio
//! `exp(log π − log π_old)` against the rollout policy's log-probability, the PPO-clip
//! surrogate `−min(r·A, clip(r, 1 − ε, 1 + ε)·A)` with the trajectory's advantage
//! broadcast to every response token (rationale, `<begin_of_image>`, image codes, EOS),
//! averaged over the micro-batch's tokens; plus `α_text·H_text + α_image·H_image`
//! (each modality's mean entropy) and, with a reference model, `β·KL` (the k3
//! estimator). Logits are clamped to ±30 before the log-softmax throughout, the old
//! and reference log-probabilities included. The caller scales the loss by
//! 1 / micro-batches.

use crate::core::batch::{Batch, Targets};
use crate::core::logprobs::{HeadLogProbs, Options, log_probs};
use crate::janus::error::Result;
use crate::janus::model::Janus;
use candle_core::{DType, Tensor};

/// The logit clamp of ReasonGen-R1's actor.
pub const LOGIT_CLAMP: f64 = 30.0;

/// Per-label values of a batch, in its label order, per head.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelValues {
    pub text: Vec<f32>,
    pub image: Vec<f32>,
}

/// A micro-batch with what its loss needs beside the model.
pub struct MicroBatch {
    pub batch: Batch,
    /// Each row's advantage.
    pub advantages: Vec<f32>,
    /// The rollout policy's log-probability of each label.
    pub old: LabelValues,
    /// The frozen reference model's, when the KL term is on.
    pub reference: Option<LabelValues>,
}

/// The objective's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// PPO's ratio clip ε.
    pub clip: f64,
    /// β of the KL term (0: none).
    pub kl_coef: f64,
}

/// What a micro-batch's loss was made of.
pub struct Parts {
    /// The loss times the caller's scale (differentiable).
    pub loss: Tensor,
    /// The surrogate's token mean.
    pub policy: f64,
    /// Mean entropy per modality (`None`: no such tokens).
    pub entropy_text: Option<f64>,
    pub entropy_image: Option<f64>,
    /// Tokens whose clipped term was the smaller.
    pub clipped: usize,
    /// `Σ (log π_old − log π)` over the tokens (an estimate of KL(π_old‖π)).
    pub kl_sum: f64,
    pub tokens: usize,
}

/// The model's log-probability of every label of `batch` (no gradient kept), clamped as
/// the loss clamps them.
pub fn label_log_probs(model: &Janus, batch: &Batch) -> Result<LabelValues> {
    let lp = log_probs(
        model,
        batch,
        Options {
            clamp: Some(LOGIT_CLAMP),
            entropy: false,
            ..Options::default()
        },
    )?;
    let values = |h: Option<HeadLogProbs>| -> Result<Vec<f32>> {
        Ok(match h {
            Some(h) => h.log_probs.detach().to_vec1()?,
            None => Vec::new(),
        })
    };
    Ok(LabelValues {
        text: values(lp.text)?,
        image: values(lp.image)?,
    })
}

/// PPO-clip's per-token loss `−min(r·A, clip(r, 1 − ε, 1 + ε)·A)` with
/// `r = exp(log π − log π_old)`, and how many tokens took the clipped term.
pub fn surrogate(
    log_probs: &Tensor,
    old: &Tensor,
    advantages: &Tensor,
    clip: f64,
) -> Result<(Tensor, usize)> {
    let ratio = (log_probs - old)?.exp()?;
    let plain = (&ratio * advantages)?;
    let clipped = (ratio.clamp(1.0 - clip, 1.0 + clip)? * advantages)?;
    let (p, c): (Vec<f32>, Vec<f32>) = (plain.to_vec1()?, clipped.to_vec1()?);
    let count = p.iter().zip(&c).filter(|(p, c)| c < p).count();
    Ok((plain.minimum(&clipped)?.neg()?, count))
}

/// One head's surrogate terms (summed, differentiable), with the clip count and the
/// KL sums.
struct Head {
    surrogate: Tensor,
    clipped: usize,
    kl_sum: f64,
    k3: Option<Tensor>,
    entropy: Tensor,
    n: usize,
}

fn head(
    values: HeadLogProbs,
    targets: &Targets,
    width: usize,
    advantages: &[f32],
    old: &[f32],
    reference: Option<&[f32]>,
    clip: f64,
) -> Result<Head> {
    let device = values.log_probs.device().clone();
    let n = targets.positions.len();
    let adv: Vec<f32> = targets
        .positions
        .iter()
        .map(|&p| advantages[p as usize / width])
        .collect();
    let adv = Tensor::from_vec(adv, n, &device)?;
    let old_t = Tensor::from_slice(old, n, &device)?;
    let lp = &values.log_probs;
    let (per_token, clipped_count) = surrogate(lp, &old_t, &adv, clip)?;
    let surrogate = per_token.sum_all()?;
    let lp_host: Vec<f32> = lp.to_vec1()?;
    let kl_sum = old
        .iter()
        .zip(&lp_host)
        .map(|(o, l)| f64::from(o - l))
        .sum();
    let k3 = match reference {
        None => None,
        Some(r) => {
            let d = (Tensor::from_slice(r, n, &device)? - lp)?;
            Some(((d.exp()? - &d)? - 1.0)?.sum_all()?)
        }
    };
    Ok(Head {
        surrogate,
        clipped: clipped_count,
        kl_sum,
        k3,
        entropy: values.entropy.expect("asked for").sum_all()?,
        n,
    })
}

/// The loss of `mb` with entropy coefficients `(α_text, α_image)`, times `scale`.
pub fn loss(
    model: &Janus,
    mb: &MicroBatch,
    settings: Settings,
    alphas: (f64, f64),
    scale: f64,
) -> Result<Parts> {
    let lp = log_probs(
        model,
        &mb.batch,
        Options {
            clamp: Some(LOGIT_CLAMP),
            entropy: true,
            ..Options::default()
        },
    )?;
    let width = mb.batch.width;
    let reference = mb.reference.as_ref();
    let text = match lp.text {
        Some(v) => Some(head(
            v,
            &mb.batch.text,
            width,
            &mb.advantages,
            &mb.old.text,
            reference.map(|r| r.text.as_slice()),
            settings.clip,
        )?),
        None => None,
    };
    let image = match lp.image {
        Some(v) => Some(head(
            v,
            &mb.batch.image,
            width,
            &mb.advantages,
            &mb.old.image,
            reference.map(|r| r.image.as_slice()),
            settings.clip,
        )?),
        None => None,
    };
    let heads: Vec<&Head> = text.iter().chain(image.iter()).collect();
    let tokens: usize = heads.iter().map(|h| h.n).sum();
    let denominator = tokens.max(1) as f64;
    let mut total = Tensor::zeros((), DType::F32, model.device())?;
    for h in &heads {
        total = (total + &h.surrogate)?;
    }
    let policy = (total / denominator)?;
    let policy_value = policy.to_scalar::<f32>()? as f64;
    let mut loss = policy;
    let mut mean_entropy = |h: &Option<Head>, alpha: f64| -> Result<Option<f64>> {
        let Some(h) = h else { return Ok(None) };
        let mean = (&h.entropy / h.n as f64)?;
        let value = mean.to_scalar::<f32>()? as f64;
        if alpha != 0.0 {
            loss = (&loss + (mean * alpha)?)?;
        }
        Ok(Some(value))
    };
    let entropy_text = mean_entropy(&text, alphas.0)?;
    let entropy_image = mean_entropy(&image, alphas.1)?;
    if settings.kl_coef != 0.0 {
        for h in &heads {
            if let Some(k3) = &h.k3 {
                loss = (loss + (k3 * (settings.kl_coef / denominator))?)?;
            }
        }
    }
    Ok(Parts {
        loss: (loss * scale)?,
        policy: policy_value,
        entropy_text,
        entropy_image,
        clipped: heads.iter().map(|h| h.clipped).sum(),
        kl_sum: heads.iter().map(|h| h.kl_sum).sum(),
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The surrogate's value and its gradient with respect to each log-probability.
    fn run(lp: &[f32], old: &[f32], adv: &[f32]) -> (Vec<f32>, Vec<f32>, usize) {
        let dev = Device::Cpu;
        let lp = Var::from_slice(lp, lp.len(), &dev).unwrap();
        let old = Tensor::from_slice(old, old.len(), &dev).unwrap();
        let adv = Tensor::from_slice(adv, adv.len(), &dev).unwrap();
        let (loss, clipped) = surrogate(lp.as_tensor(), &old, &adv, 0.2).unwrap();
        let grads = loss.sum_all().unwrap().backward().unwrap();
        let g = grads.get(lp.as_tensor()).unwrap().to_vec1().unwrap();
        (loss.to_vec1().unwrap(), g, clipped)
    }

    #[test]
    fn inside_the_clip_range_it_is_the_plain_ratio_objective() {
        // r = e^0.1 = 1.105 (inside [0.8, 1.2]); A = 2 and −1.
        let (v, g, clipped) = run(&[-1.0, -2.0], &[-1.1, -2.1], &[2.0, -1.0]);
        let r = 0.1f32.exp();
        assert!(
            (v[0] + r * 2.0).abs() < 1e-6 && (v[1] - r).abs() < 1e-6,
            "{v:?}"
        );
        // d(−r·A)/d log π = −r·A.
        assert!(
            (g[0] + r * 2.0).abs() < 1e-5 && (g[1] - r).abs() < 1e-5,
            "{g:?}"
        );
        assert_eq!(clipped, 0);
    }

    #[test]
    fn outside_the_clip_range_the_gradient_is_zero() {
        // r = e^0.5 = 1.65 > 1.2 with A > 0, and r = e^−0.5 = 0.61 < 0.8 with A < 0:
        // the clipped term is the smaller, flat in log π.
        let (v, g, clipped) = run(&[0.0, 0.0], &[-0.5, 0.5], &[1.0, -1.0]);
        assert!(
            (v[0] + 1.2).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6,
            "{v:?}"
        );
        assert_eq!(g, vec![0.0, 0.0]);
        assert_eq!(clipped, 2);
        // r > 1 + ε with A < 0 is not clipped: the plain term is the smaller.
        let (_, g, clipped) = run(&[0.0], &[-0.5], &[-1.0]);
        assert!((g[0] - 0.5f32.exp()).abs() < 1e-5 && clipped == 0, "{g:?}");
    }
}
