//! Sampling the next token of every row of a batch, on the logits' device.
//!
//! Temperature, then optional top-k and top-p (nucleus), as transformers' warpers
//! order them; temperature 0 is greedy (argmax). Top-k and top-p find each row's
//! threshold by bisection (compare and sum over the vocabulary, no sort), and the draw
//! is an inverse-CDF lookup done in two levels (blocks of √V tokens, then within the
//! block), so that no step needs a V × V cumulative sum. The only randomness is one
//! uniform number per row and step from [`RowRng`], seeded per row: the same seed
//! gives the same tokens on any device, and a row's draws do not depend on the other
//! rows of its batch.

use candle_core::{D, DType, Device, IndexOp, Result, Tensor};
use datasets::rng::Rng;

/// How to draw from a distribution of logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Divides the logits; 0 takes the most likely token.
    pub temperature: f64,
    /// Keep the k most likely tokens (ties at the k-th included).
    pub top_k: Option<usize>,
    /// Keep the fewest most likely tokens whose probability reaches p.
    pub top_p: Option<f64>,
}

impl Sampling {
    /// Plain multinomial sampling at temperature 1 (the papers' setting).
    pub const MULTINOMIAL: Sampling = Sampling {
        temperature: 1.0,
        top_k: None,
        top_p: None,
    };

    /// The most likely token.
    pub const GREEDY: Sampling = Sampling {
        temperature: 0.0,
        top_k: None,
        top_p: None,
    };

    pub fn check(&self) -> std::result::Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!("temperature {} must be ≥ 0", self.temperature));
        }
        if self.top_k == Some(0) {
            return Err("top_k must be at least 1".into());
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(format!("top_p {p} must be in (0, 1]"));
        }
        Ok(())
    }
}

/// A seeded stream of uniform numbers in (0, 1) per row (SplitMix64).
#[derive(Clone, Debug)]
pub struct RowRng {
    rows: Vec<Rng>,
}

impl RowRng {
    pub fn new(seeds: &[u64]) -> Self {
        RowRng {
            rows: seeds.iter().map(|&s| Rng::new(s)).collect(),
        }
    }

    fn next(rng: &mut Rng) -> f32 {
        let z = rng.next_u64();
        // 24 random bits, centred in their cell: strictly inside (0, 1).
        ((z >> 40) as f32 + 0.5) / (1u32 << 24) as f32
    }

    /// One uniform number per row, as a [rows] F32 tensor.
    pub fn uniforms(&mut self, device: &Device) -> Result<Tensor> {
        let u: Vec<f32> = self.rows.iter_mut().map(Self::next).collect();
        Tensor::new(u, device)
    }
}

/// Bisection steps of the top-k and top-p thresholds (F32 intervals collapse by then).
const BISECTIONS: usize = 40;

/// The largest threshold t per row (of [B, V] `x`) with `score(x ≥ t) ≥ target`, where
/// `lo` satisfies it and `hi` does not; `score` sums over the vocabulary.
fn threshold(
    x: &Tensor,
    mut lo: Tensor,
    mut hi: Tensor,
    target: f64,
    score: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    for _ in 0..BISECTIONS {
        let mid = ((&lo + &hi)? * 0.5)?;
        let keep = x.broadcast_ge(&mid)?.to_dtype(DType::F32)?;
        let ok = score(&keep)?.ge(target)?;
        lo = ok.where_cond(&mid, &lo)?;
        hi = ok.where_cond(&hi, &mid)?;
    }
    Ok(lo)
}

/// Logits [B, V] with all but the top k of each row at −∞.
fn top_k(logits: &Tensor, k: usize) -> Result<Tensor> {
    let lo = logits.min_keepdim(D::Minus1)?;
    let hi = (logits.max_keepdim(D::Minus1)? + 1.0)?;
    let t = threshold(logits, lo, hi, k as f64, |keep| keep.sum_keepdim(D::Minus1))?;
    let keep = logits.broadcast_ge(&t)?;
    keep.where_cond(
        logits,
        &Tensor::full(f32::NEG_INFINITY, logits.shape(), logits.device())?,
    )
}

/// Probabilities [B, V] with all but each row's nucleus of mass p at 0.
fn top_p(probs: &Tensor, p: f64) -> Result<Tensor> {
    let lo = probs.zeros_like()?.narrow(D::Minus1, 0, 1)?;
    let hi = (probs.max_keepdim(D::Minus1)? + 1.0)?;
    let t = threshold(probs, lo, hi, p, |keep| {
        (keep * probs)?.sum_keepdim(D::Minus1)
    })?;
    (probs.broadcast_ge(&t)?.to_dtype(DType::F32)? * probs)?.contiguous()
}

/// The index in each row of [B, N] `mass` (non-negative, not all 0) where the running
/// sum first reaches `target` [B, 1]; rounding can never move it onto an entry of 0.
fn inverse_cdf(mass: &Tensor, target: &Tensor) -> Result<Tensor> {
    let n = mass.dim(D::Minus1)?;
    let below = mass
        .cumsum(D::Minus1)?
        .broadcast_lt(target)?
        .to_dtype(DType::F32)?;
    let index = below.sum_keepdim(D::Minus1)?;
    let positions = Tensor::arange(0f32, n as f32, mass.device())?
        .unsqueeze(0)?
        .broadcast_as(mass.shape())?;
    let positive = mass.gt(0.0)?;
    let first = positive
        .where_cond(&positions, &(positions.ones_like()? * n as f64)?)?
        .min_keepdim(D::Minus1)?;
    let last = positive
        .where_cond(&positions, &positions.zeros_like()?)?
        .max_keepdim(D::Minus1)?;
    index.maximum(&first)?.minimum(&last)?.to_dtype(DType::U32)
}

/// One draw per row from probabilities [B, V] (rows summing to > 0) with uniforms [B].
fn draw(probs: &Tensor, uniforms: &Tensor) -> Result<Tensor> {
    let (b, v) = probs.dims2()?;
    let width = (v as f64).sqrt().ceil() as usize;
    let blocks = v.div_ceil(width);
    let probs = probs.pad_with_zeros(D::Minus1, 0, blocks * width - v)?;
    let probs = probs.reshape((b, blocks, width))?;
    let mass = probs.sum(D::Minus1)?; // [B, blocks]
    let total = mass.sum_keepdim(D::Minus1)?;
    let target = (uniforms.unsqueeze(1)? * &total)?;
    let block = inverse_cdf(&mass, &target)?; // [B, 1]
    let before = (mass.cumsum(D::Minus1)? - &mass)?.gather(&block, 1)?;
    let inside = probs
        .gather(
            &block
                .unsqueeze(2)?
                .broadcast_as((b, 1, width))?
                .contiguous()?,
            1,
        )?
        .squeeze(1)?; // [B, width]
    let rest = (target - before)?;
    let offset = inverse_cdf(&inside, &rest)?.to_dtype(DType::F32)?;
    let index = ((block.to_dtype(DType::F32)? * width as f64)? + offset)?;
    index.squeeze(1)?.to_dtype(DType::U32)
}

/// The next token [B] (u32) of each row of `logits` [B, V] with `uniforms` [B] in (0, 1).
pub fn sample(logits: &Tensor, sampling: &Sampling, uniforms: &Tensor) -> Result<Tensor> {
    let logits = logits.to_dtype(DType::F32)?;
    if sampling.temperature == 0.0 {
        return logits.argmax(D::Minus1);
    }
    let mut logits = (logits / sampling.temperature)?;
    if let Some(k) = sampling.top_k
        && k < logits.dim(D::Minus1)?
    {
        logits = top_k(&logits, k)?;
    }
    let mut probs = candle_nn::ops::softmax_last_dim(&logits)?;
    if let Some(p) = sampling.top_p
        && p < 1.0
    {
        probs = top_p(&probs, p)?;
    }
    draw(&probs, uniforms)
}

/// Classifier-free guidance of logits [2B, V] whose first B rows are conditional and
/// last B unconditional: `uncond + w · (cond − uncond)`.
pub fn guide(logits: &Tensor, weight: f64) -> Result<Tensor> {
    let rows = logits.dim(0)? / 2;
    let cond = logits.i(..rows)?;
    let uncond = logits.i(rows..)?;
    &uncond + ((cond - &uncond)? * weight)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> Device {
        Device::Cpu
    }

    /// Frequencies of `n` draws with uniforms evenly spread over (0, 1).
    fn frequencies(probs: &[f32], n: usize) -> Vec<f64> {
        let v = probs.len();
        let probs = Tensor::new(probs, &cpu())
            .unwrap()
            .unsqueeze(0)
            .unwrap()
            .broadcast_as((n, v))
            .unwrap();
        let u: Vec<f32> = (0..n).map(|i| (i as f32 + 0.5) / n as f32).collect();
        let drawn = draw(
            &probs.contiguous().unwrap(),
            &Tensor::new(u, &cpu()).unwrap(),
        )
        .unwrap();
        let mut counts = vec![0f64; v];
        for t in drawn.to_vec1::<u32>().unwrap() {
            counts[t as usize] += 1.0 / n as f64;
        }
        counts
    }

    #[test]
    fn draws_follow_the_distribution_and_never_take_a_zero() {
        // 11 tokens: blocks of 4 with one padded slot; zeros at both ends and inside.
        let probs = [0.0, 0.1, 0.05, 0.0, 0.3, 0.0, 0.25, 0.1, 0.0, 0.2, 0.0];
        let freq = frequencies(&probs, 4000);
        for (f, p) in freq.iter().zip(probs) {
            assert!((f - p as f64).abs() <= 1e-3, "{freq:?}");
        }
        // A uniform at the very edges still lands on a token of positive probability.
        let probs = Tensor::new(&[[0.0f32, 0.5, 0.5, 0.0, 0.0]], &cpu())
            .unwrap()
            .broadcast_as((2, 5))
            .unwrap();
        let u = Tensor::new(&[1e-9f32, 1.0 - 1e-7], &cpu()).unwrap();
        assert_eq!(
            draw(&probs.contiguous().unwrap(), &u)
                .unwrap()
                .to_vec1::<u32>()
                .unwrap(),
            [1, 2]
        );
    }

    #[test]
    fn top_k_and_top_p_keep_the_right_tokens() {
        let logits = Tensor::new(&[[1.0f32, 3.0, 2.0, 5.0, 4.0, 0.0]], &cpu()).unwrap();
        let kept = top_k(&logits, 2).unwrap().to_vec2::<f32>().unwrap();
        let finite: Vec<usize> = (0..6).filter(|&i| kept[0][i].is_finite()).collect();
        assert_eq!(finite, [3, 4]);
        let probs = Tensor::new(&[[0.05f32, 0.4, 0.1, 0.3, 0.15]], &cpu()).unwrap();
        // 0.4 + 0.3 = 0.7 < 0.75; with 0.15 the nucleus reaches it.
        let kept = top_p(&probs, 0.75).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(kept[0], [0.0, 0.4, 0.0, 0.3, 0.15]);
        let kept = top_p(&probs, 0.7).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(kept[0], [0.0, 0.4, 0.0, 0.3, 0.0]);
    }

    #[test]
    fn sampling_draws_only_within_top_k_and_greedy_takes_the_maximum() {
        let logits = Tensor::new(&[0.0f32, 2.0, 1.0, 0.5, 1.9, -1.0], &cpu()).unwrap();
        let n = 2000;
        let batch = logits
            .unsqueeze(0)
            .unwrap()
            .broadcast_as((n, 6))
            .unwrap()
            .contiguous()
            .unwrap();
        let mut rng = RowRng::new(&(0..n as u64).collect::<Vec<_>>());
        let s = Sampling {
            temperature: 0.7,
            top_k: Some(3),
            top_p: None,
        };
        let drawn = sample(&batch, &s, &rng.uniforms(&cpu()).unwrap())
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        assert!(drawn.iter().all(|t| [1, 2, 4].contains(t)));
        for t in [1, 2, 4] {
            assert!(drawn.contains(&t));
        }
        let greedy = sample(&batch, &Sampling::GREEDY, &rng.uniforms(&cpu()).unwrap()).unwrap();
        assert!(greedy.to_vec1::<u32>().unwrap().iter().all(|&t| t == 1));
    }

    #[test]
    fn row_streams_are_seeded_and_inside_the_unit_interval() {
        let mut a = RowRng::new(&[1, 2]);
        let mut b = RowRng::new(&[1, 3]);
        let (ua, ub) = (a.uniforms(&cpu()).unwrap(), b.uniforms(&cpu()).unwrap());
        let (ua, ub) = (ua.to_vec1::<f32>().unwrap(), ub.to_vec1::<f32>().unwrap());
        assert_eq!(ua[0], ub[0]);
        assert_ne!(ua[1], ub[1]);
        let mut c = RowRng::new(&[7]);
        for _ in 0..1000 {
            let u = c.uniforms(&cpu()).unwrap().to_vec1::<f32>().unwrap()[0];
            assert!(u > 0.0 && u < 1.0);
        }
    }

    #[test]
    fn guidance_extrapolates_from_the_unconditional_rows() {
        let logits =
            Tensor::new(&[[1.0f32, 2.0], [0.5, 1.0], [0.0, 1.0], [1.0, 1.0]], &cpu()).unwrap();
        let guided = guide(&logits, 5.0).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(guided, [[5.0, 6.0], [-1.5, 1.0]]);
    }

    #[test]
    fn bad_settings_are_refused() {
        let s = |temperature, top_k, top_p| {
            Sampling {
                temperature,
                top_k,
                top_p,
            }
            .check()
        };
        assert!(s(-1.0, None, None).is_err());
        assert!(s(1.0, Some(0), None).is_err());
        assert!(s(1.0, None, Some(0.0)).is_err());
        assert!(s(1.0, None, Some(1.5)).is_err());
        assert!(s(0.0, Some(5), Some(1.0)).is_ok());
    }
}
