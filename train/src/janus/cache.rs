//! Attention bookkeeping of a batch: which positions hold tokens ([`Padding`]), the RoPE
//! position of each token and the additive attention mask of one forward
//! ([`Context`]), and the batched, pre-allocated key-value cache of incremental
//! decoding ([`KvCache`]).
//!
//! Padding may be on the left (generation) or the right (training) of any row. A
//! padded position is never attended to, and the tokens of a row take positions 0, 1,
//! 2, … whatever padding comes before them (transformers' `cumsum(mask) − 1`), so a row
//! computes the same in any batch. Unconditional CFG rows are not padding: their pad
//! *tokens* are valid positions, attended as Janus does.

use super::config::LlamaConfig;
use candle_core::{DType, Device, Result, Tensor};

/// The additive mask value of a position that may not be attended to: finite, so that
/// a query with nothing to attend (a padded position) gives numbers, not NaN.
const MASKED: f32 = -1e30;

/// Which positions of a batch of new tokens hold tokens (`true`) or padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Padding {
    rows: usize,
    len: usize,
    valid: Vec<bool>,
}

impl Padding {
    /// Every position holds a token.
    pub fn none(rows: usize, len: usize) -> Self {
        Padding {
            rows,
            len,
            valid: vec![true; rows * len],
        }
    }

    /// Row r ends with `lengths[r]` tokens after padding.
    pub fn left(lengths: &[usize], len: usize) -> Self {
        Self::from_fn(lengths.len(), len, |r, j| j + lengths[r] >= len)
    }

    /// Row r starts with `lengths[r]` tokens, then padding.
    pub fn right(lengths: &[usize], len: usize) -> Self {
        Self::from_fn(lengths.len(), len, |r, j| j < lengths[r])
    }

    /// Row r's position j holds a token iff `valid(r, j)`.
    pub fn from_fn(rows: usize, len: usize, valid: impl Fn(usize, usize) -> bool) -> Self {
        Padding {
            rows,
            len,
            valid: (0..rows * len).map(|i| valid(i / len, i % len)).collect(),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_valid(&self, row: usize, j: usize) -> bool {
        self.valid[row * self.len + j]
    }
}

/// What a forward needs beside the embeddings.
pub struct Context {
    /// RoPE position of each new token, [B·T] u32.
    pub(crate) positions: Tensor,
    /// Additive mask [B, 1, T, keys] (F32).
    pub(crate) mask: Tensor,
    /// The highest of `positions`.
    pub(crate) max_position: u32,
    /// Where the new keys go in the cache (0 without one).
    pub(crate) offset: usize,
}

/// The positions of `padding`'s tokens, continuing from `next` (updated), and the
/// highest: a token takes its row's next position; padding takes it too without using
/// it up.
fn positions(padding: &Padding, next: &mut [u32], device: &Device) -> Result<(Tensor, u32)> {
    let mut out = Vec::with_capacity(padding.rows * padding.len);
    for (r, next) in next.iter_mut().enumerate() {
        for j in 0..padding.len {
            out.push(*next);
            if padding.is_valid(r, j) {
                *next += 1;
            }
        }
    }
    let max = out.iter().copied().max().unwrap_or(0);
    Ok((
        Tensor::from_vec(out, padding.rows * padding.len, device)?,
        max,
    ))
}

/// The mask of `t` new queries at `offset` over `keys` keys, of which row r's key k may
/// be attended iff `key_valid[r · keys + k]`: causal, plus key padding.
fn mask(
    key_valid: &[bool],
    rows: usize,
    keys: usize,
    offset: usize,
    t: usize,
    device: &Device,
) -> Result<Tensor> {
    let pad: Vec<f32> = key_valid
        .iter()
        .map(|&v| if v { 0.0 } else { MASKED })
        .collect();
    let pad = Tensor::from_vec(pad, (rows, 1, 1, keys), device)?;
    let causal: Vec<f32> = (0..t * keys)
        .map(|i| {
            if i % keys <= offset + i / keys {
                0.0
            } else {
                MASKED
            }
        })
        .collect();
    let causal = Tensor::from_vec(causal, (1, 1, t, keys), device)?;
    pad.broadcast_add(&causal)
}

impl Context {
    /// A whole batch at once, without a cache (training, parity).
    pub fn full(padding: &Padding, device: &Device) -> Result<Self> {
        let mut next = vec![0u32; padding.rows];
        let (positions, max_position) = positions(padding, &mut next, device)?;
        Ok(Context {
            positions,
            max_position,
            mask: mask(
                &padding.valid,
                padding.rows,
                padding.len,
                0,
                padding.len,
                device,
            )?,
            offset: 0,
        })
    }
}

/// Keys and values of every layer for `rows` sequences of up to `capacity` positions,
/// allocated once; each forward writes its new positions in place.
pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    rows: usize,
    capacity: usize,
    len: usize,
    /// Row-major `rows × capacity`: which cached positions hold tokens.
    valid: Vec<bool>,
    next_position: Vec<u32>,
}

impl KvCache {
    pub fn new(
        config: &LlamaConfig,
        rows: usize,
        capacity: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let shape = (rows, config.num_key_value_heads, capacity, config.head_dim);
        let zeros = || Tensor::zeros(shape, dtype, device);
        let layers = config.num_hidden_layers;
        Ok(KvCache {
            keys: (0..layers).map(|_| zeros()).collect::<Result<_>>()?,
            values: (0..layers).map(|_| zeros()).collect::<Result<_>>()?,
            rows,
            capacity,
            len: 0,
            valid: vec![false; rows * capacity],
            next_position: vec![0; rows],
        })
    }

    /// Positions written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Make room for the new tokens of `padding`; the context of their forward.
    pub(crate) fn advance(&mut self, padding: &Padding, device: &Device) -> Result<Context> {
        if padding.rows != self.rows {
            candle_core::bail!(
                "the cache holds {} rows, the batch has {}",
                self.rows,
                padding.rows
            )
        }
        let offset = self.len;
        let t = padding.len;
        if offset + t > self.capacity {
            candle_core::bail!(
                "the cache holds {} positions; {offset} are used and {t} more were asked for",
                self.capacity
            )
        }
        for r in 0..self.rows {
            for j in 0..t {
                self.valid[r * self.capacity + offset + j] = padding.is_valid(r, j);
            }
        }
        let keys = offset + t;
        let key_valid: Vec<bool> = (0..self.rows)
            .flat_map(|r| {
                self.valid[r * self.capacity..r * self.capacity + keys]
                    .iter()
                    .copied()
            })
            .collect();
        let (positions, max_position) = positions(padding, &mut self.next_position, device)?;
        self.len = keys;
        Ok(Context {
            positions,
            max_position,
            mask: mask(&key_valid, self.rows, keys, offset, t, device)?,
            offset,
        })
    }

    /// Store layer `layer`'s new keys and values ([B, kv heads, T, head dim]) at
    /// `offset`; all of the layer's keys and values up to them.
    pub(crate) fn store(
        &self,
        layer: usize,
        offset: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        let (keys, values) = (&self.keys[layer], &self.values[layer]);
        keys.slice_set(&k.contiguous()?, 2, offset)?;
        values.slice_set(&v.contiguous()?, 2, offset)?;
        Ok((
            keys.narrow(2, 0, offset + t)?,
            values.narrow(2, 0, offset + t)?,
        ))
    }
}
