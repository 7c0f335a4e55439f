//! GenEval's six task families over the world's shapes and colors, with GenEval's
//! templates and metadata (`prompts/create_prompts.py`), and the seeded prompt-set
//! generator with held-out splits.
//!
//! | task | template | include / exclude |
//! |---|---|---|
//! | `single_object` | a photo of a {shape} | `{shape,1}` |
//! | `two_object` | a photo of a {A} and a {B} | `{A,1},{B,1}` |
//! | `counting` | a photo of {two..four} {shapes} | `{shape,N}`, exclude `{shape,N+1}` |
//! | `colors` | a photo of a/an {color} {shape} | `{shape,1,color}` |
//! | `position` | a photo of a {A} {relation} a {B} | `{B,1},{A,1,position:[relation,0]}` |
//! | `color_attr` | a photo of a/an {c1} {A} and a/an {c2} {B} | `{A,1,c1},{B,1,c2}` |
//!
//! Pairs of objects are of two different shapes, and `color_attr`'s two colors differ,
//! as in GenEval.

use super::metadata::{Exclude, Include, Metadata, Position, Task};
use super::split::{HeldOut, Split};
use super::vocab::{Color, Relation, Shape, number_word, with_article};
use crate::rng::{Rng, mix};

/// How many prompts to draw per task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub single_object: usize,
    pub two_object: usize,
    pub counting: usize,
    pub colors: usize,
    pub position: usize,
    pub color_attr: usize,
}

impl TaskCounts {
    /// `n` of every task.
    pub fn uniform(n: usize) -> TaskCounts {
        TaskCounts {
            single_object: n,
            two_object: n,
            counting: n,
            colors: n,
            position: n,
            color_attr: n,
        }
    }

    /// The count of one task (0 for `scene`).
    pub fn of(&self, task: Task) -> usize {
        match task {
            Task::SingleObject => self.single_object,
            Task::TwoObject => self.two_object,
            Task::Counting => self.counting,
            Task::Colors => self.colors,
            Task::Position => self.position,
            Task::ColorAttr => self.color_attr,
            Task::Scene => 0,
        }
    }
}

/// A prompt with its record and split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedPrompt {
    pub metadata: Metadata,
    pub split: Split,
}

/// Ordered pairs of two different shapes.
fn shape_pairs() -> Vec<(Shape, Shape)> {
    Shape::ALL
        .into_iter()
        .flat_map(|a| Shape::ALL.into_iter().map(move |b| (a, b)))
        .filter(|(a, b)| a != b)
        .collect()
}

fn record(tag: Task, include: Vec<Include>, exclude: Vec<Exclude>, prompt: String) -> Metadata {
    Metadata {
        tag,
        include,
        exclude,
        prompt,
    }
}

fn colored(class: Shape, color: Color) -> Include {
    Include {
        color: Some(color),
        ..Include::new(class, 1)
    }
}

/// Every distinct prompt of a GenEval task, in a fixed order (none for `scene`, which
/// has no template). Sizes: 4, 12, 12, 40, 48 and 1080 for the six tasks.
pub fn all_prompts(task: Task) -> Vec<Metadata> {
    let photo = |what: String| format!("a photo of {what}");
    match task {
        Task::SingleObject => Shape::ALL
            .into_iter()
            .map(|s| {
                record(
                    task,
                    vec![Include::new(s, 1)],
                    vec![],
                    photo(with_article(s.name())),
                )
            })
            .collect(),
        Task::TwoObject => shape_pairs()
            .into_iter()
            .map(|(a, b)| {
                let text = format!("{} and {}", with_article(a.name()), with_article(b.name()));
                record(
                    task,
                    vec![Include::new(a, 1), Include::new(b, 1)],
                    vec![],
                    photo(text),
                )
            })
            .collect(),
        Task::Counting => Shape::ALL
            .into_iter()
            .flat_map(|s| (2..=4).map(move |n| (s, n)))
            .filter_map(|(s, n)| {
                let text = format!("{} {}", number_word(n)?, s.plural());
                let exclude = Exclude {
                    class: s,
                    count: n + 1,
                };
                Some(record(
                    task,
                    vec![Include::new(s, n)],
                    vec![exclude],
                    photo(text),
                ))
            })
            .collect(),
        Task::Colors => Color::ALL
            .into_iter()
            .flat_map(|c| Shape::ALL.into_iter().map(move |s| (c, s)))
            .map(|(c, s)| {
                let text = with_article(&format!("{} {}", c.name(), s.name()));
                record(task, vec![colored(s, c)], vec![], photo(text))
            })
            .collect(),
        Task::Position => shape_pairs()
            .into_iter()
            .flat_map(|pair| Relation::ALL.into_iter().map(move |r| (pair, r)))
            .map(|((a, b), relation)| {
                let positioned = Include {
                    position: Some(Position { relation, group: 0 }),
                    ..Include::new(a, 1)
                };
                let text = format!(
                    "{} {} {}",
                    with_article(a.name()),
                    relation.name(),
                    with_article(b.name())
                );
                record(
                    task,
                    vec![Include::new(b, 1), positioned],
                    vec![],
                    photo(text),
                )
            })
            .collect(),
        Task::ColorAttr => shape_pairs()
            .into_iter()
            .flat_map(|pair| {
                Color::ALL.into_iter().flat_map(move |c1| {
                    Color::ALL
                        .into_iter()
                        .filter(move |&c2| c2 != c1)
                        .map(move |c2| (pair, c1, c2))
                })
            })
            .map(|((a, b), c1, c2)| {
                let text = format!(
                    "{} and {}",
                    with_article(&format!("{} {}", c1.name(), a.name())),
                    with_article(&format!("{} {}", c2.name(), b.name()))
                );
                record(
                    task,
                    vec![colored(a, c1), colored(b, c2)],
                    vec![],
                    photo(text),
                )
            })
            .collect(),
        Task::Scene => Vec::new(),
    }
}

/// A seeded prompt set: for each GenEval task in order, `counts.of(task)` distinct
/// prompts drawn without replacement (all of them when fewer exist, as GenEval does for
/// `single_object`), each with its split under `held_out`. The same seed, counts and
/// held-out pairs give the same set.
pub fn prompt_set(seed: u64, counts: &TaskCounts, held_out: &HeldOut) -> Vec<GeneratedPrompt> {
    let mut out = Vec::new();
    for (i, task) in Task::GENEVAL.into_iter().enumerate() {
        let mut rng = Rng::new(mix(seed ^ mix(i as u64)));
        let mut candidates = all_prompts(task);
        rng.shuffle(&mut candidates);
        candidates.truncate(counts.of(task));
        out.extend(candidates.into_iter().map(|metadata| GeneratedPrompt {
            split: held_out.split_of(&metadata),
            metadata,
        }));
    }
    out
}
