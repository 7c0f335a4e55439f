//! The fused ops against the composite ones they replace (the oracle): forward values
//! and every input's gradient within 1e-5 (F32, CPU) over random shapes and seeds,
//! including odd sizes, grouped queries and left- and right-padded batches.

use super::attention::attention_keeping;
use crate::core::logprobs::{Options, label_values};
use crate::janus::cache::{Context, Padding};
use crate::janus::llama::{Ops, apply_rope, attend, rms_norm, swiglu};
use candle_core::{Device, Result, Tensor, Var};

const TOLERANCE: f32 = 1e-5;
const SEEDS: u64 = 12;

/// A small deterministic generator (xorshift), so that a failure names its seed.
struct Draw(u64);

impl Draw {
    fn new(seed: u64) -> Self {
        Draw(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// In lo..=hi.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// Uniform in −1..1.
    fn value(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn tensor(&mut self, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.value() * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[self.int(0, options.len() - 1)]
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Run `f` over fresh variables of `inputs` with both ops; compare the outputs and the
/// gradients of Σ output · weights (random) of every input.
fn compare(
    what: &str,
    draw: &mut Draw,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor], Ops) -> Result<Tensor>,
) {
    let run = |ops: Ops, weights: Option<&Tensor>| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&tensors, ops).unwrap();
        let grads = weights.map(|w| {
            let grads = (&out * w).unwrap().sum_all().unwrap().backward().unwrap();
            vars.iter()
                .map(|v| grads.get(v.as_tensor()).cloned())
                .collect::<Vec<_>>()
        });
        (out, grads)
    };
    let (reference, _) = run(Ops::Composite, None);
    let weights = draw.tensor(reference.dims(), 1.0);
    let (want, want_grads) = run(Ops::Composite, Some(&weights));
    let (got, got_grads) = run(Ops::Fused, Some(&weights));
    let err = max_diff(&got, &want);
    assert!(err <= TOLERANCE, "{what}: forward differs by {err}");
    for (i, (g, w)) in got_grads
        .unwrap()
        .iter()
        .zip(want_grads.unwrap())
        .enumerate()
    {
        match (g, w) {
            (Some(g), Some(w)) => {
                let err = max_diff(g, &w);
                assert!(
                    err <= TOLERANCE,
                    "{what}: input {i}'s gradient differs by {err}"
                );
            }
            (None, None) => {}
            (g, w) => panic!(
                "{what}: input {i} has a gradient {} / {}",
                g.is_some(),
                w.is_some()
            ),
        }
    }
}

#[test]
fn rms_norm_matches_the_composite() {
    for seed in 0..SEEDS {
        let mut d = Draw::new(seed);
        let (b, t, h) = (d.int(1, 3), d.int(1, 9), d.pick(&[1, 3, 7, 64, 65]));
        let x = d.tensor(&[b, t, h], 2.0);
        let w = d.tensor(&[h], 1.5);
        let what = format!("rms_norm seed {seed} [{b}, {t}, {h}]");
        compare(&what, &mut d, &[x, w], |v, ops| {
            rms_norm(&v[0], &v[1], 1e-6, ops)
        });
    }
}

#[test]
fn swiglu_matches_the_composite() {
    for seed in 0..SEEDS {
        let mut d = Draw::new(seed);
        let shape = [d.int(1, 3), d.int(1, 9), d.pick(&[1, 5, 128, 129])];
        let gate = d.tensor(&shape, 4.0);
        let up = d.tensor(&shape, 2.0);
        let what = format!("swiglu seed {seed} {shape:?}");
        compare(&what, &mut d, &[gate, up], |v, ops| {
            swiglu(&v[0], &v[1], ops)
        });
    }
}

#[test]
fn rope_matches_the_composite_on_the_models_transposed_heads() {
    for seed in 0..SEEDS {
        let mut d = Draw::new(seed);
        let (b, h, t, half) = (d.int(1, 3), d.int(1, 4), d.int(1, 9), d.pick(&[1, 3, 5, 8]));
        // [B, T, H, D] transposed to [B, H, T, D], as the projections give it.
        let x = d.tensor(&[b, t, h, 2 * half], 2.0);
        let angles = d.tensor(&[b, t, half], 3.0);
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let what = format!("rope seed {seed} [{b}, {h}, {t}, {}]", 2 * half);
        compare(&what, &mut d, &[x], |v, ops| {
            apply_rope(&v[0].transpose(1, 2)?, &cos, &sin, ops)
        });
    }
}

#[test]
fn attention_matches_the_composite_with_padding_and_grouped_queries() {
    for seed in 0..2 * SEEDS {
        let mut d = Draw::new(seed);
        let (b, kv, group) = (d.int(1, 3), d.int(1, 2), d.int(1, 3));
        let (t, dim) = (d.pick(&[1, 5, 8, 13]), d.pick(&[2, 6, 16]));
        let h = kv * group;
        let lengths: Vec<usize> = (0..b).map(|_| d.int(0, t)).collect();
        let side = ["none", "left", "right"][(seed % 3) as usize];
        let padding = match side {
            "left" => Padding::left(&lengths, t),
            "right" => Padding::right(&lengths, t),
            _ => Padding::none(b, t),
        };
        let mask = Context::full(&padding, &Device::Cpu).unwrap().mask;
        let q = d.tensor(&[b, t, h, dim], 2.0);
        let k = d.tensor(&[b, t, kv, dim], 2.0);
        let v = d.tensor(&[b, t, kv, dim], 1.0);
        let what = format!(
            "attention seed {seed}: B {b}, {h} heads over {kv}, T {t}, D {dim}, {side} padding {lengths:?}"
        );
        compare(&what, &mut d, &[q, k, v], |x, ops| {
            let heads = |y: &Tensor| y.transpose(1, 2);
            let (q, k, v) = (heads(&x[0])?, heads(&x[1])?, heads(&x[2])?);
            match ops {
                // Odd seeds: the backward recomputes the probabilities from the rows'
                // statistics, as past the kept probabilities' limit.
                Ops::Fused if seed % 2 == 1 => {
                    attention_keeping(&q, &k, &v, &mask, (dim as f64).powf(-0.5), 0)
                }
                _ => attend(&q, &k, &v, &mask, ops),
            }
        });
    }
}

#[test]
fn label_log_probs_and_entropies_match_the_composite() {
    for seed in 0..SEEDS {
        let mut d = Draw::new(seed);
        let (n, vocab) = (d.int(1, 12), d.pick(&[2, 7, 41, 300]));
        let labels: Vec<u32> = (0..n).map(|_| d.int(0, vocab - 1) as u32).collect();
        let logits = d.tensor(&[n, vocab], 8.0);
        let clamp = (seed % 2 == 1).then_some(5.0);
        let what = format!("log-probs seed {seed}: {n} × {vocab}, clamp {clamp:?}");
        compare(&what, &mut d, &[logits], |v, ops| {
            let options = Options {
                clamp,
                entropy: true,
                ops,
            };
            let h = label_values(&v[0], &labels, options).map_err(candle_core::Error::wrap)?;
            Tensor::stack(&[h.log_probs, h.entropy.expect("asked")], 1)
        });
    }
}

#[test]
fn a_fused_op_refuses_other_dtypes_and_bad_labels() {
    let logits = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = crate::janus::fused::log_probs::label_log_probs(&logits, &[0, 3]).unwrap_err();
    assert!(
        err.to_string()
            .contains("label 3 is beyond the vocabulary of 3"),
        "{err}"
    );
    let half = logits.to_dtype(candle_core::DType::BF16).unwrap();
    let err = crate::janus::fused::swiglu::swiglu(&half, &half).unwrap_err();
    assert!(err.to_string().contains("F32 only"), "{err}");
}
