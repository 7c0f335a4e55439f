//! Token sequences and the micro-batches the training core computes on.
//!
//! A [`Sequence`] holds ids (text ids, or image codes where `is_image`) and, for each
//! label (the token at j + 1 predicted at j), its [`Kind`] or `None` when it is not in
//! the loss. A [`Batch`] right-pads sequences and lists each head's labels (the text
//! head's where the next token is text, the image head's where it is an image code)
//! in row order, with a weight each; the label order is the same for every forward over
//! the batch, so per-label values (old log-probs, advantages) line up with it.

use crate::janus::cache::Padding;
use crate::janus::error::Result;
use candle_core::{Device, Tensor};

/// What a label (the token at j + 1 predicted at j) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Image,
    BeginOfImage,
}

/// One training sequence: ids (text ids, or codes where `is_image`) and the kind of
/// each label in the loss (`labels[j]` is about `ids[j + 1]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub is_image: Vec<bool>,
    pub labels: Vec<Option<Kind>>,
}

/// Label positions (flat over the batch), their targets and weights, of one head.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Targets {
    pub positions: Vec<u32>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
}

/// A right-padded micro-batch with its loss targets.
pub struct Batch {
    pub ids: Tensor,
    /// Positions per row (the labels' flat positions divide by it into rows).
    pub width: usize,
    pub is_image: Tensor,
    pub padding: Padding,
    /// Labels of the text head (`lm_head`) and of the image head (`gen_head`), weight-0
    /// labels left out.
    pub text: Targets,
    pub image: Targets,
    /// Labels in the loss, weight 0 included (the loss's denominator).
    pub counted: usize,
    /// Tokens (not padding) and positions (rows × width).
    pub tokens: usize,
    pub positions: usize,
}

/// Loss weight of each kind of label.
#[derive(Clone, Copy, Debug)]
pub struct Weights {
    pub text: f32,
    pub image: f32,
    pub begin_of_image: f32,
}

impl Batch {
    /// `rows` right-padded with `pad`.
    pub fn new(rows: &[Sequence], pad: u32, weights: Weights, device: &Device) -> Result<Batch> {
        let width = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut image = Vec::with_capacity(rows.len() * width);
        let (mut text, mut codes) = (Targets::default(), Targets::default());
        let mut counted = 0;
        for (r, row) in rows.iter().enumerate() {
            ids.extend_from_slice(&row.ids);
            ids.extend(std::iter::repeat_n(pad, width - row.ids.len()));
            image.extend(row.is_image.iter().map(|&b| u8::from(b)));
            image.extend(std::iter::repeat_n(0u8, width - row.ids.len()));
            for (j, label) in row.labels.iter().enumerate() {
                let Some(kind) = label else { continue };
                counted += 1;
                let (targets, weight) = match kind {
                    Kind::Text => (&mut text, weights.text),
                    Kind::Image => (&mut codes, weights.image),
                    Kind::BeginOfImage => (&mut text, weights.begin_of_image),
                };
                if weight != 0.0 {
                    targets.positions.push((r * width + j) as u32);
                    targets.targets.push(row.ids[j + 1]);
                    targets.weights.push(weight);
                }
            }
        }
        let lengths: Vec<usize> = rows.iter().map(|r| r.ids.len()).collect();
        Ok(Batch {
            ids: Tensor::from_vec(ids, (rows.len(), width), device)?,
            width,
            is_image: Tensor::from_vec(image, (rows.len(), width), device)?,
            padding: Padding::right(&lengths, width),
            text,
            image: codes,
            counted,
            tokens: lengths.iter().sum(),
            positions: rows.len() * width,
        })
    }
}

/// `rows` cut into micro-batches of `size` after sorting by length (longest first).
pub fn buckets(mut rows: Vec<Sequence>, size: usize) -> Vec<Vec<Sequence>> {
    rows.sort_by_key(|r| std::cmp::Reverse(r.ids.len()));
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        out.push(rows.by_ref().take(size).collect());
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A text sequence of `n` tokens, no labels.
    pub(crate) fn seq(n: usize) -> Sequence {
        Sequence {
            ids: vec![1; n],
            is_image: vec![false; n],
            labels: vec![None; n - 1],
        }
    }

    #[test]
    fn buckets_group_similar_lengths() {
        let rows = vec![seq(3), seq(10), seq(4), seq(9)];
        let lens: Vec<Vec<usize>> = buckets(rows, 2)
            .iter()
            .map(|b| b.iter().map(|r| r.ids.len()).collect())
            .collect();
        assert_eq!(lens, vec![vec![10, 9], vec![4, 3]]);
    }
}
