//! AdamW's moments in one of three formats ([`MomentFormat`]) and the update over them:
//! FP32 (4 + 4 bytes a parameter), BF16 with stochastic rounding (2 + 2), and 8-bit
//! blockwise (1 + 1, plus two FP32 scales per [`BLOCK`] elements). The narrow formats
//! are decoded a block at a time into FP32 scratch on the stack, updated by the same
//! kernel as FP32 ([`super::fused`]) and encoded back, in the one pass.
//!
//! BF16 rounding adds 16 random bits below the kept mantissa before truncating, so the
//! stored value is unbiased; the bits are a hash of (seed, update, parameter, element),
//! so a run is reproducible and a resumed run rounds as the uninterrupted one.
//!
//! The 8-bit format scales each block by its absolute maximum (the bitsandbytes idea)
//! and maps the scaled value through a logarithmic code book: m signed (0, ±2^-8..1 in
//! 127 steps each way), and √v unsigned (0, 2^-16..1 in 255 steps), so that a small
//! second moment in a block of large ones keeps its magnitude instead of rounding to
//! zero (and a positive √v never rounds to zero, which would divide by eps). The code
//! books are this project's own; nothing here is bitsandbytes' map.

use super::fused::{AdamWStep, adamw_serial};
use candle_core::Tensor;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Elements per 8-bit block (one scale for m and one for √v each).
pub const BLOCK: usize = 256;

/// Tensors at least this long are updated over the thread pool.
const PARALLEL_MIN: usize = 1 << 15;

/// How AdamW stores its moments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MomentFormat {
    /// FP32 m and v.
    #[default]
    F32,
    /// BF16 m and v, stochastically rounded.
    Bf16,
    /// 8-bit m and √v with a per-block absolute-maximum scale.
    Int8,
}

/// The moments of one parameter tensor.
#[derive(Clone, Debug)]
pub enum Moments {
    F32 {
        m: Vec<f32>,
        v: Vec<f32>,
    },
    /// BF16 bit patterns.
    Bf16 {
        m: Vec<u16>,
        v: Vec<u16>,
    },
    /// Codes into [`signed_book`] (m) and [`unsigned_book`] (√v); `scales[b]` is block
    /// b's (absmax m, absmax √v).
    Int8 {
        m: Vec<u8>,
        v: Vec<u8>,
        scales: Vec<[f32; 2]>,
    },
    /// FP32 moments as tensors on the parameter's accelerator, updated by the
    /// composite ops ([`super::composite::update_tensor`]) until a device kernel exists.
    Device {
        m: Tensor,
        v: Tensor,
    },
}

impl PartialEq for Moments {
    fn eq(&self, other: &Moments) -> bool {
        match (self, other) {
            (Moments::F32 { m, v }, Moments::F32 { m: m2, v: v2 }) => m == m2 && v == v2,
            (Moments::Bf16 { m, v }, Moments::Bf16 { m: m2, v: v2 }) => m == m2 && v == v2,
            (
                Moments::Int8 { m, v, scales },
                Moments::Int8 {
                    m: m2,
                    v: v2,
                    scales: s2,
                },
            ) => m == m2 && v == v2 && scales == s2,
            (Moments::Device { .. }, Moments::Device { .. }) => self.to_f32() == other.to_f32(),
            _ => false,
        }
    }
}

impl Moments {
    /// Zero moments for `n` elements.
    pub fn zeros(format: MomentFormat, n: usize) -> Moments {
        match format {
            MomentFormat::F32 => Moments::F32 {
                m: vec![0.0; n],
                v: vec![0.0; n],
            },
            MomentFormat::Bf16 => Moments::Bf16 {
                m: vec![0; n],
                v: vec![0; n],
            },
            MomentFormat::Int8 => Moments::Int8 {
                m: vec![signed_book().zero; n],
                v: vec![0; n],
                scales: vec![[0.0; 2]; n.div_ceil(BLOCK)],
            },
        }
    }

    pub fn format(&self) -> MomentFormat {
        match self {
            Moments::F32 { .. } | Moments::Device { .. } => MomentFormat::F32,
            Moments::Bf16 { .. } => MomentFormat::Bf16,
            Moments::Int8 { .. } => MomentFormat::Int8,
        }
    }

    /// Elements.
    pub fn len(&self) -> usize {
        match self {
            Moments::F32 { m, .. } => m.len(),
            Moments::Bf16 { m, .. } => m.len(),
            Moments::Int8 { m, .. } => m.len(),
            Moments::Device { m, .. } => m.elem_count(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of state held (the buffers' lengths, scales included).
    pub fn bytes(&self) -> usize {
        use std::mem::size_of_val;
        match self {
            Moments::F32 { m, v } => size_of_val(&m[..]) + size_of_val(&v[..]),
            Moments::Bf16 { m, v } => size_of_val(&m[..]) + size_of_val(&v[..]),
            Moments::Int8 { m, v, scales } => {
                size_of_val(&m[..]) + size_of_val(&v[..]) + size_of_val(&scales[..])
            }
            Moments::Device { m, v } => 4 * (m.elem_count() + v.elem_count()),
        }
    }

    /// m and v decoded to FP32.
    pub fn to_f32(&self) -> (Vec<f32>, Vec<f32>) {
        match self {
            Moments::F32 { m, v } => (m.clone(), v.clone()),
            Moments::Bf16 { m, v } => (
                m.iter().map(|&b| bf16_to_f32(b)).collect(),
                v.iter().map(|&b| bf16_to_f32(b)).collect(),
            ),
            Moments::Int8 { m, v, scales } => {
                let (mut mf, mut vf) = (vec![0.0; m.len()], vec![0.0; m.len()]);
                for (b, s) in scales.iter().enumerate() {
                    let r = b * BLOCK..((b + 1) * BLOCK).min(m.len());
                    decode_int8(
                        &m[r.clone()],
                        &v[r.clone()],
                        *s,
                        &mut mf[r.clone()],
                        &mut vf[r],
                    );
                }
                (mf, vf)
            }
            Moments::Device { m, v } => {
                let read = |t: &Tensor| {
                    t.flatten_all()
                        .and_then(|t| t.to_vec1::<f32>())
                        .expect("reading AdamW's moments back from the device")
                };
                (read(m), read(v))
            }
        }
    }

    /// One AdamW update of `p` by `g` (same length as the moments) with constants `k`;
    /// `key` seeds the BF16 rounding of this update of this parameter. Host moments
    /// only: device ones are updated by [`super::AdamW::update`] (panics on them).
    pub fn update(&mut self, p: &mut [f32], g: &[f32], k: &AdamWStep, key: u64) {
        assert!(
            p.len() == self.len() && g.len() == self.len(),
            "moments of {} elements, parameter {}, gradient {}",
            self.len(),
            p.len(),
            g.len()
        );
        match self {
            Moments::F32 { m, v } => super::fused::adamw_segment(p, g, m, v, k),
            Moments::Bf16 { m, v } => {
                let mut units = vec![(); m.len().div_ceil(BLOCK)];
                by_blocks(p, g, m, v, &mut units, |b, p, g, m, v, _| {
                    let (mut mf, mut vf) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
                    let (mf, vf) = (&mut mf[..p.len()], &mut vf[..p.len()]);
                    for i in 0..p.len() {
                        mf[i] = bf16_to_f32(m[i]);
                        vf[i] = bf16_to_f32(v[i]);
                    }
                    adamw_serial(p, g, mf, vf, k);
                    for i in 0..p.len() {
                        let bits = mix(key ^ ((b * BLOCK + i) as u64).wrapping_mul(GOLDEN));
                        m[i] = bf16_stochastic(mf[i], bits as u16);
                        v[i] = bf16_stochastic(vf[i], (bits >> 16) as u16);
                    }
                });
            }
            Moments::Int8 { m, v, scales } => {
                by_blocks(p, g, m, v, scales, |_, p, g, m, v, s| {
                    let (mut mf, mut vf) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
                    let (mf, vf) = (&mut mf[..p.len()], &mut vf[..p.len()]);
                    decode_int8(m, v, *s, mf, vf);
                    adamw_serial(p, g, mf, vf, k);
                    *s = encode_int8(mf, vf, m, v);
                });
            }
            Moments::Device { .. } => panic!("device moments are updated by AdamW::update"),
        }
    }
}

/// Calls `f(block index, p, g, m, v, scale)` on each [`BLOCK`] of the tensor, over the
/// thread pool for long tensors.
fn by_blocks<M: Send, V: Send, S: Send>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [M],
    v: &mut [V],
    scales: &mut [S],
    f: impl Fn(usize, &mut [f32], &[f32], &mut [M], &mut [V], &mut S) + Sync,
) {
    if p.len() < PARALLEL_MIN {
        p.chunks_mut(BLOCK)
            .zip(g.chunks(BLOCK))
            .zip(m.chunks_mut(BLOCK))
            .zip(v.chunks_mut(BLOCK))
            .zip(scales.iter_mut())
            .enumerate()
            .for_each(|(b, ((((p, g), m), v), s))| f(b, p, g, m, v, s));
    } else {
        p.par_chunks_mut(BLOCK)
            .zip(g.par_chunks(BLOCK))
            .zip(m.par_chunks_mut(BLOCK))
            .zip(v.par_chunks_mut(BLOCK))
            .zip(scales.par_iter_mut())
            .enumerate()
            .with_min_len(16)
            .for_each(|(b, ((((p, g), m), v), s))| f(b, p, g, m, v, s));
    }
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's finaliser: a well-mixed 64-bit hash of `x`.
pub(super) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(GOLDEN);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// `x` rounded to BF16 up or down with probability by distance, `r` the random bits.
fn bf16_stochastic(x: f32, r: u16) -> u16 {
    let bits = x.to_bits();
    if !x.is_finite() {
        return (bits >> 16) as u16;
    }
    // Magnitude rounding (sign-magnitude layout): a carry into the exponent is the
    // correct next value up.
    (bits.wrapping_add(r as u32) >> 16) as u16
}

/// A code book: the 8-bit code → value in [-1, 1] (scaled by the block's maximum),
/// and, for the encoding, the code of each magnitude bucket: the float's exponent and
/// top [`BUCKET_BITS`] mantissa bits index the nearest code's distance from zero's
/// (found by search at the bucket's centre), so encoding is a shift and a lookup.
pub(super) struct Book {
    values: Vec<f32>,
    /// Offset from `zero` of the nearest code, per bucket from 2^`floor` up to 1.
    buckets: Vec<u8>,
    /// Magnitudes under 2^floor take the first bucket.
    floor: i32,
    /// The code of 0.
    zero: u8,
}

/// Mantissa bits that pick an encoding bucket (width 2^-8 of the value: the bucket's
/// centre is within 0.2 % of any value in it, against the books' 4.5 % steps).
const BUCKET_BITS: u32 = 8;

impl Book {
    /// A book of `values` (ascending), with buckets from 2^`floor`.
    fn new(values: Vec<f32>, floor: i32) -> Book {
        let zero = values
            .iter()
            .position(|&x| x == 0.0)
            .expect("0 is in the book");
        let mids: Vec<f32> = values.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
        let per_octave = 1usize << BUCKET_BITS;
        let buckets = (0..=(-floor) as usize * per_octave)
            .map(|b| {
                let (octave, k) = (b / per_octave, b % per_octave);
                let centre = (floor + octave as i32) as f64;
                let x = centre.exp2() * (1.0 + (k as f64 + 0.5) / per_octave as f64);
                let code = mids.partition_point(|&mid| (mid as f64) < x.min(1.0));
                (code - zero) as u8
            })
            .collect();
        Book {
            values,
            buckets,
            floor,
            zero: zero as u8,
        }
    }

    /// The code nearest `x` (in [-1, 1]), to within a bucket.
    fn encode(&self, x: f32) -> u8 {
        let base = ((127 + self.floor) as u32) << BUCKET_BITS;
        let bucket = (x.abs().to_bits() >> (23 - BUCKET_BITS)).saturating_sub(base) as usize;
        let offset = self.buckets[bucket.min(self.buckets.len() - 1)];
        if x < 0.0 {
            self.zero - offset
        } else {
            self.zero + offset
        }
    }
}

/// m's book: 0 and ±2^(-8·j/126) for j in 0..=126 (255 codes).
pub(super) fn signed_book() -> &'static Book {
    static BOOK: OnceLock<Book> = OnceLock::new();
    BOOK.get_or_init(|| {
        let mags: Vec<f32> = (0..127)
            .map(|j| (-8.0 * j as f64 / 126.0).exp2() as f32)
            .collect();
        let mut values: Vec<f32> = mags.iter().map(|&x| -x).collect();
        values.push(0.0);
        values.extend(mags.iter().rev());
        Book::new(values, -10)
    })
}

/// √v's book: 0 and 2^(-16·j/254) for j in 0..=254 (256 codes).
pub(super) fn unsigned_book() -> &'static Book {
    static BOOK: OnceLock<Book> = OnceLock::new();
    BOOK.get_or_init(|| {
        let mut values = vec![0.0f32];
        values.extend(
            (0..255)
                .rev()
                .map(|j| (-16.0 * j as f64 / 254.0).exp2() as f32),
        );
        Book::new(values, -18)
    })
}

fn decode_int8(m: &[u8], v: &[u8], [sm, su]: [f32; 2], mf: &mut [f32], vf: &mut [f32]) {
    let (mb, ub) = (signed_book(), unsigned_book());
    for i in 0..m.len() {
        mf[i] = mb.values[m[i] as usize] * sm;
        let u = ub.values[v[i] as usize] * su;
        vf[i] = u * u;
    }
}

/// Encodes one block; returns its scales.
fn encode_int8(mf: &[f32], vf: &[f32], m: &mut [u8], v: &mut [u8]) -> [f32; 2] {
    let (mb, ub) = (signed_book(), unsigned_book());
    let sm = mf.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    let su = vf.iter().fold(0.0f32, |a, x| a.max(*x)).sqrt();
    let (rm, ru) = (1.0 / sm, 1.0 / su);
    for i in 0..mf.len() {
        m[i] = if sm > 0.0 {
            mb.encode(mf[i] * rm)
        } else {
            mb.zero
        };
        let u = vf[i].sqrt();
        v[i] = if u > 0.0 { ub.encode(u * ru).max(1) } else { 0 };
    }
    [sm, su]
}

impl Moments {
    /// The buffers as they are checkpointed: FP32 m, v (read back from a device); BF16
    /// m, v (as FP32 values, which hold them exactly); 8-bit codes m, v and the scales flattened (m, √v per block).
    pub fn parts(&self) -> Parts {
        match self {
            Moments::F32 { m, v } => Parts::Floats(m.clone(), v.clone()),
            Moments::Bf16 { .. } | Moments::Device { .. } => {
                let (m, v) = self.to_f32();
                Parts::Floats(m, v)
            }
            Moments::Int8 { m, v, scales } => Parts::Codes {
                m: m.clone(),
                v: v.clone(),
                scales: scales.iter().flatten().copied().collect(),
            },
        }
    }

    /// Moments of `format` for `n` elements from `parts`, or why they do not fit.
    pub fn from_parts(format: MomentFormat, n: usize, parts: Parts) -> Result<Moments, String> {
        let check = |what: &str, len: usize, want: usize| {
            if len == want {
                Ok(())
            } else {
                Err(format!(
                    "{what} holds {len} values, the parameter needs {want}"
                ))
            }
        };
        match (format, parts) {
            (MomentFormat::F32, Parts::Floats(m, v)) => {
                check("m", m.len(), n)?;
                check("v", v.len(), n)?;
                Ok(Moments::F32 { m, v })
            }
            (MomentFormat::Bf16, Parts::Floats(m, v)) => {
                check("m", m.len(), n)?;
                check("v", v.len(), n)?;
                let bits =
                    |x: Vec<f32>| x.into_iter().map(|x| (x.to_bits() >> 16) as u16).collect();
                Ok(Moments::Bf16 {
                    m: bits(m),
                    v: bits(v),
                })
            }
            (MomentFormat::Int8, Parts::Codes { m, v, scales }) => {
                check("m", m.len(), n)?;
                check("v", v.len(), n)?;
                check("the scales", scales.len(), 2 * n.div_ceil(BLOCK))?;
                let scales = scales.chunks(2).map(|s| [s[0], s[1]]).collect();
                Ok(Moments::Int8 { m, v, scales })
            }
            (format, _) => Err(format!("the stored moments are not {format:?}")),
        }
    }
}

/// Moments as stored in a checkpoint.
pub enum Parts {
    Floats(Vec<f32>, Vec<f32>),
    Codes {
        m: Vec<u8>,
        v: Vec<u8>,
        scales: Vec<f32>,
    },
}

#[cfg(test)]
mod tests {
    use super::super::{AdamWConfig, adamw_segment};
    use super::*;

    #[test]
    fn state_bytes_per_parameter_are_8_4_and_2_plus_scales() {
        let n = 1 << 20;
        let per = |f| Moments::zeros(f, n).bytes() as f64 / n as f64;
        assert_eq!(per(MomentFormat::F32), 8.0);
        assert_eq!(per(MomentFormat::Bf16), 4.0);
        assert_eq!(per(MomentFormat::Int8), 2.0 + 8.0 / BLOCK as f64);
    }

    #[test]
    fn stochastic_rounding_is_unbiased_and_lands_on_a_neighbour() {
        let x = 1.0f32 + 3.0 / 1024.0; // between 1 and 1 + 2^-7, 3/8 of the way
        let (lo, hi) = (1.0f32, 1.0 + 1.0 / 128.0);
        let n = 100_000;
        let sum: f64 = (0..n)
            .map(|i| {
                let y = bf16_to_f32(bf16_stochastic(x, mix(i) as u16));
                assert!(y == lo || y == hi, "{y}");
                y as f64
            })
            .sum();
        assert!(
            (sum / n as f64 - x as f64).abs() < 2e-5,
            "{}",
            sum / n as f64
        );
        let neg = bf16_to_f32(bf16_stochastic(-x, 0));
        assert_eq!(neg, -lo, "no random bits: truncation towards zero");
        assert_eq!(
            bf16_stochastic(1.5, 0xFFFF),
            bf16_stochastic(1.5, 0),
            "exact stays"
        );
    }

    #[test]
    fn int8_codes_hold_each_value_within_the_book_spacing() {
        let m: Vec<f32> = (0..BLOCK).map(|i| ((i as f32) - 128.0) * 1e-3).collect();
        let mut v: Vec<f32> = (0..BLOCK)
            .map(|i| 1e-9 * 1.1f32.powi(i as i32 / 2))
            .collect();
        v[7] = 0.0;
        let (mut mc, mut vc) = (vec![0u8; BLOCK], vec![0u8; BLOCK]);
        let scales = encode_int8(&m, &v, &mut mc, &mut vc);
        let (mut m2, mut v2) = (vec![0.0; BLOCK], vec![0.0; BLOCK]);
        decode_int8(&mc, &vc, scales, &mut m2, &mut v2);
        let top = scales[0];
        for (a, b) in m.iter().zip(&m2) {
            // Above the book's floor, within half a step (2^(8/126) ≈ 1.045) and a
            // bucket (0.2 %) of the value.
            if a.abs() > top / 256.0 {
                assert!((a - b).abs() <= 0.025 * a.abs(), "m {a} → {b}");
            } else {
                assert!((a - b).abs() <= top / 256.0, "m {a} → {b}");
            }
        }
        assert_eq!(m2[128], 0.0, "zero is exact");
        for (a, b) in v.iter().zip(&v2) {
            if *a == 0.0 {
                assert_eq!(*b, 0.0);
            } else {
                // √v within 2.5 %, so v within 5 %; never zero.
                assert!((a - b).abs() <= 0.05 * a, "v {a} → {b}");
            }
        }
    }

    /// `steps` updates with the same gradient `g` everywhere, BF16 moments, rounding by
    /// `round(value, element)`; returns v.
    fn constant_gradient(steps: u64, round: impl Fn(f32, u64) -> u16) -> Vec<f32> {
        let n = 2048;
        let config = AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            moments: MomentFormat::Bf16,
            seed: 0,
        };
        let (mut p, g) = (vec![0.0f32; n], vec![1.0f32; n]);
        let (mut m, mut v) = (vec![0u16; n], vec![0u16; n]);
        for t in 1..=steps {
            let k = AdamWStep::new(&config, t, 1e-3, false, 1.0);
            let mut mf: Vec<f32> = m.iter().map(|&b| bf16_to_f32(b)).collect();
            let mut vf: Vec<f32> = v.iter().map(|&b| bf16_to_f32(b)).collect();
            adamw_segment(&mut p, &g, &mut mf, &mut vf, &k);
            for i in 0..n {
                let e = t * n as u64 + i as u64;
                m[i] = round(mf[i], e);
                v[i] = round(vf[i], e ^ (1 << 63));
            }
        }
        v.iter().map(|&b| bf16_to_f32(b)).collect()
    }

    #[test]
    fn round_to_nearest_bf16_stalls_where_stochastic_rounding_tracks() {
        // FP32: v = 1 - 0.999^t. Nearest rounding stops once 0.001 · (1 - v) is under
        // half a BF16 step of v (2^-9 v): near v = 0.34.
        let steps = 3000;
        let want = 1.0 - 0.999f32.powi(steps as i32);
        let nearest = |x: f32, _| {
            let b = x.to_bits();
            ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
        };
        let stalled = constant_gradient(steps, nearest);
        assert!(
            stalled[0] < 0.5 * want,
            "nearest: {} against {want}",
            stalled[0]
        );
        let stochastic = constant_gradient(steps, |x, e| bf16_stochastic(x, mix(e) as u16));
        let mean = stochastic.iter().sum::<f32>() / stochastic.len() as f32;
        assert!(
            (mean - want).abs() < 0.01 * want,
            "stochastic: {mean} against {want}"
        );
    }

    #[test]
    fn stored_parts_rebuild_the_same_moments() {
        let n = 3 * BLOCK + 5;
        let p: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).cos()).collect();
        let config = AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.0,
            moments: MomentFormat::F32,
            seed: 0,
        };
        let k = AdamWStep::new(&config, 1, 1e-3, false, 1.0);
        for format in [MomentFormat::F32, MomentFormat::Bf16, MomentFormat::Int8] {
            let mut moments = Moments::zeros(format, n);
            moments.update(&mut p.clone(), &g, &k, 5);
            let back = Moments::from_parts(format, n, moments.parts()).unwrap();
            assert_eq!(back, moments, "{format:?}");
            let short = Moments::from_parts(format, n + 1, moments.parts()).unwrap_err();
            assert!(short.contains("needs"), "{short}");
        }
        let wrong = Moments::from_parts(
            MomentFormat::Int8,
            n,
            Moments::zeros(MomentFormat::F32, n).parts(),
        );
        assert!(wrong.unwrap_err().contains("not Int8"));
    }
}
