//! SFT samples as token sequences ([`crate::core::batch`]), and their order.
//!
//! A sequence (paper.md §2.2) is `[BOS] "<|User|>: {prompt}. Output a richly detailed
//! prompt:\n\n<|Assistant|>:" {rationale} <begin_of_image> {codes} <end_of_image> [EOS]`:
//! the user turn through [`TextTokenizer::prompt_ids`], the rationale tokenised on its
//! own. Without a rationale (the Janus-Pro baseline) the user turn ends with
//! `<begin_of_image>` and the codes follow. The loss covers the labels from the first
//! response token through EOS: text (rationale, `<end_of_image>`, EOS), image codes,
//! and `<begin_of_image>` apart, each with its own weight.
//!
//! The prompt of each use of a sample is drawn from its augmented families as
//! ReasonGen-R1's `prompt_augmentation` does: a family uniformly (among those the
//! sample has), then an element of a list family; tags joined by `,`, object prompts as
//! `a, b and c`; a trailing `.` stripped. A drawn fraction of uses is unconditional
//! ([`Unconditional`]).
//!
//! Randomness is a function of (seed, epoch, sample, purpose) through a digest, so the
//! whole data stream is fixed by the seed and the position in it ([`Order`]), which is
//! all a checkpoint needs to continue it. The samples of `length_group` steps are drawn
//! together, sorted by length and cut into steps of `batch × accum` taken in a seeded
//! order ([`group_by_length`]); each step sorts its own by length again and cuts them
//! into micro-batches ([`buckets`]). The padding is then small, and a step's batch is
//! still exactly `batch × accum` drawn samples.

use super::config::Unconditional;
use crate::core::batch::{Kind, Sequence, buckets};
use crate::janus::error::Result;
use crate::janus::text::TextTokenizer;
use pipeline::Digest;
use schemas::AugmentedPrompts;

/// A uniform 64-bit draw determined by `parts`.
pub fn draw(parts: &impl serde::Serialize) -> u64 {
    Digest::of_json(parts).seed()
}

/// Uniform in `0..n` from a 64-bit draw (`n > 0`).
fn below(x: u64, n: usize) -> usize {
    ((u128::from(x) * n as u128) >> 64) as usize
}

/// Uniform in `[0, 1)` from a 64-bit draw.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// One prompt family of a sample.
#[derive(Clone, Debug, PartialEq)]
enum Family {
    One(String),
    Pick(Vec<String>),
}

/// The non-empty families of `p`, in ReasonGen-R1's order.
fn families(p: &AugmentedPrompts) -> Vec<Family> {
    let mut out = Vec::new();
    if let Some(s) = p.short_caption.as_ref().filter(|s| !s.trim().is_empty()) {
        out.push(Family::One(s.clone()));
    }
    if !p.paraphrases.is_empty() {
        out.push(Family::Pick(p.paraphrases.clone()));
    }
    if !p.tags.is_empty() {
        out.push(Family::One(p.tags.join(",")));
    }
    if !p.varied_captions.is_empty() {
        out.push(Family::Pick(p.varied_captions.clone()));
    }
    if let Some((last, rest)) = p.object_prompts.split_last() {
        out.push(Family::One(if rest.is_empty() {
            last.clone()
        } else {
            format!("{} and {last}", rest.join(", "))
        }));
    }
    out
}

/// A sample ready to become sequences.
#[derive(Clone, Debug)]
pub struct Example {
    pub id: String,
    families: Vec<Family>,
    pub rationale_ids: Vec<u32>,
    pub codes: Vec<u32>,
}

impl Example {
    /// `None` when the sample has no prompt at all.
    pub fn new(
        id: String,
        prompts: &AugmentedPrompts,
        rationale_ids: Vec<u32>,
        codes: Vec<u32>,
    ) -> Option<Example> {
        let families = families(prompts);
        (!families.is_empty()).then_some(Example {
            id,
            families,
            rationale_ids,
            codes,
        })
    }

    /// Every prompt a draw can give.
    pub fn candidates(&self) -> Vec<String> {
        let mut out = Vec::new();
        for family in &self.families {
            match family {
                Family::One(s) => out.push(clean(s)),
                Family::Pick(list) => out.extend(list.iter().map(|s| clean(s))),
            }
        }
        out
    }

    /// The prompt drawn by `family_draw` and `element_draw`.
    pub fn prompt(&self, family_draw: u64, element_draw: u64) -> String {
        let text = match &self.families[below(family_draw, self.families.len())] {
            Family::One(s) => s.as_str(),
            Family::Pick(list) => list[below(element_draw, list.len())].as_str(),
        };
        clean(text)
    }
}

/// A prompt trimmed, its trailing `.` stripped.
fn clean(text: &str) -> String {
    let text = text.trim();
    text.strip_suffix('.')
        .unwrap_or(text)
        .trim_end()
        .to_string()
}

/// Builds sequences (see the module documentation).
pub struct Builder<'a> {
    pub text: &'a TextTokenizer,
    pub template: String,
    pub rationale: bool,
    pub unconditional: Unconditional,
}

impl Builder<'_> {
    /// The sequence of `example` with `prompt`; `dropped` makes it unconditional.
    pub fn build(&self, example: &Example, prompt: &str, dropped: bool) -> Result<Sequence> {
        let s = self.text.special;
        let user = self.template.replace("{}", prompt);
        // The user turn, through `<begin_of_image>` without a rationale.
        let head = self.text.prompt_ids(&user, !self.rationale)?;
        let mut ids = head.clone();
        if self.rationale {
            ids.extend_from_slice(&example.rationale_ids);
            ids.push(s.begin_of_image);
        }
        // The first label in the loss: the first response token.
        let mut first = head.len() - 1;
        if dropped {
            // Everything between BOS and `<begin_of_image>` is blanked.
            let boi = ids.len() - 1;
            match self.unconditional {
                Unconditional::Masked => ids = vec![s.bos, s.begin_of_image],
                Unconditional::Pads => {
                    for id in &mut ids[1..boi] {
                        *id = s.pad;
                    }
                }
            }
            first = ids.len() - 2;
        }
        let text_len = ids.len();
        ids.extend_from_slice(&example.codes);
        ids.push(s.end_of_image);
        ids.push(s.eos);
        let mut is_image = vec![false; ids.len()];
        for flag in &mut is_image[text_len..text_len + example.codes.len()] {
            *flag = true;
        }
        let labels = (0..ids.len() - 1)
            .map(|j| {
                (j >= first).then(|| {
                    let next = j + 1;
                    if is_image[next] {
                        Kind::Image
                    } else if next == text_len - 1 {
                        Kind::BeginOfImage
                    } else {
                        Kind::Text
                    }
                })
            })
            .collect();
        Ok(Sequence {
            ids,
            is_image,
            labels,
        })
    }
}

/// The position in the seeded data stream: epochs of seeded permutations.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub epoch: u64,
    pub cursor: usize,
}

/// The data stream over `n` samples.
pub struct Order {
    seed: u64,
    n: usize,
    position: Position,
    permutation: Vec<usize>,
}

impl Order {
    pub fn new(seed: u64, n: usize, position: Position) -> Order {
        let mut order = Order {
            seed,
            n,
            permutation: Vec::new(),
            position,
        };
        order.permutation = order.permute(order.position.epoch);
        order
    }

    fn permute(&self, epoch: u64) -> Vec<usize> {
        let mut keyed: Vec<(u64, usize)> = (0..self.n)
            .map(|i| (draw(&(self.seed, epoch, i, "order")), i))
            .collect();
        keyed.sort_unstable();
        keyed.into_iter().map(|(_, i)| i).collect()
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    /// The next sample and the epoch it is drawn in.
    pub fn next_sample(&mut self) -> (usize, u64) {
        if self.position.cursor >= self.n {
            self.position.epoch += 1;
            self.position.cursor = 0;
            self.permutation = self.permute(self.position.epoch);
        }
        let i = self.permutation[self.position.cursor];
        self.position.cursor += 1;
        (i, self.position.epoch)
    }
}

/// How each use of a sample is drawn.
pub struct Draws {
    pub seed: u64,
    pub cfg_dropout: f64,
}

impl Draws {
    /// (prompt, dropped) for sample `i` in `epoch`.
    pub fn of(&self, example: &Example, i: usize, epoch: u64) -> (String, bool) {
        let prompt = example.prompt(
            draw(&(self.seed, epoch, i, "family")),
            draw(&(self.seed, epoch, i, "element")),
        );
        let dropped = unit(draw(&(self.seed, epoch, i, "cfg"))) < self.cfg_dropout;
        (prompt, dropped)
    }
}

/// The sequences of several steps cut into steps of `per_step` after sorting by length,
/// the steps then in an order drawn from `key`: each step is still `per_step` drawn
/// sequences, now of similar lengths, so its micro-batches carry little padding (the
/// length grouping of `group_by_length` trainers), and long and short steps alternate
/// at random rather than in runs.
pub fn group_by_length(
    rows: Vec<Sequence>,
    per_step: usize,
    key: &impl serde::Serialize,
) -> Vec<Vec<Sequence>> {
    let mut keyed: Vec<(u64, Vec<Sequence>)> = buckets(rows, per_step)
        .into_iter()
        .enumerate()
        .map(|(k, step)| (draw(&(key, k)), step))
        .collect();
    keyed.sort_by_key(|(d, _)| *d);
    keyed.into_iter().map(|(_, step)| step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::batch::tests::seq;

    fn prompts() -> AugmentedPrompts {
        AugmentedPrompts {
            short_caption: Some("a red cube.".into()),
            paraphrases: vec!["one red cube".into(), "a cube, red".into()],
            tags: vec!["red".into(), "cube".into()],
            varied_captions: vec![],
            object_prompts: vec!["a cube".into(), "a ball".into(), "a cone".into()],
        }
    }

    #[test]
    fn families_follow_prompt_augmentation() {
        let ex = Example::new("x".into(), &prompts(), vec![], vec![]).unwrap();
        assert_eq!(ex.families.len(), 4, "the empty family is left out");
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..200u64 {
            seen.insert(ex.prompt(draw(&(k, "f")), draw(&(k, "e"))));
        }
        let want = [
            "a red cube",
            "one red cube",
            "a cube, red",
            "red,cube",
            "a cube, a ball and a cone",
        ];
        assert_eq!(seen, want.iter().map(|s| s.to_string()).collect());
        assert!(Example::new("y".into(), &AugmentedPrompts::default(), vec![], vec![]).is_none());
    }

    #[test]
    fn the_order_is_a_seeded_permutation_per_epoch() {
        let mut a = Order::new(
            3,
            5,
            Position {
                epoch: 0,
                cursor: 0,
            },
        );
        let first: Vec<usize> = (0..5).map(|_| a.next_sample().0).collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        let second: Vec<usize> = (0..5).map(|_| a.next_sample().0).collect();
        assert_ne!(first, second, "each epoch has its own order");
        // Resuming from a position continues the same stream.
        let mut b = Order::new(
            3,
            5,
            Position {
                epoch: 1,
                cursor: 2,
            },
        );
        assert_eq!(b.next_sample(), (second[2], 1));
    }

    #[test]
    fn length_groups_are_whole_steps_of_similar_lengths_in_a_seeded_order() {
        let lengths = [7, 30, 12, 5, 28, 9, 15, 22, 3, 18, 26, 11];
        let rows = || lengths.iter().map(|&n| seq(n)).collect::<Vec<_>>();
        let steps = group_by_length(rows(), 3, &(1u64, "g"));
        let mut lens: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| s.iter().map(|r| r.ids.len()).collect())
            .collect();
        assert!(lens.iter().all(|s| s.len() == 3), "{lens:?}");
        // Every sequence is used once.
        let mut all: Vec<usize> = lens.concat();
        all.sort();
        let mut want = lengths.to_vec();
        want.sort();
        assert_eq!(all, want);
        // The steps are the length-sorted thirds, in an order that the key decides.
        lens.sort_by_key(|s| std::cmp::Reverse(s[0]));
        assert_eq!(
            lens,
            vec![
                vec![30, 28, 26],
                vec![22, 18, 15],
                vec![12, 11, 9],
                vec![7, 5, 3]
            ]
        );
        let order = |key: u64| -> Vec<usize> {
            group_by_length(rows(), 3, &(key, "g"))
                .iter()
                .map(|s| s[0].ids.len())
                .collect()
        };
        assert_eq!(order(1), order(1));
        assert!(
            (2..20).any(|k| order(k) != order(1)),
            "the key changes the step order"
        );
    }
}
