//! What a report shows, gathered and selected ([`gather`](super::gather)) before any
//! HTML is written ([`html`](super::html)): evaluations with their scores and chosen
//! prompts, training curves, dataset cards.

use schemas::eval_score::EvalScore;

/// The whole page.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub title: String,
    /// One per eval report, in the order given.
    pub evals: Vec<EvalRun>,
    pub trainings: Vec<Training>,
    pub datasets: Vec<DatasetCard>,
}

/// One evaluation (one eval report): its scores and the prompts the page shows.
#[derive(Clone, Debug, Default)]
pub struct EvalRun {
    /// The eval node, or the report's short digest when only its scores were given.
    pub label: String,
    /// The model that drew the images: its node, or its short digest.
    pub model: String,
    /// `overall` first, then the tasks, as the report wrote them.
    pub scores: Vec<EvalScore>,
    /// How many prompts were judged (all of them, not only those shown).
    pub prompts_judged: usize,
    /// A few prompts of each task, in the order judged.
    pub by_task: Vec<(String, Vec<PromptResult>)>,
    /// The prompts with the lowest and the highest mean verdict.
    pub worst: Vec<PromptResult>,
    pub best: Vec<PromptResult>,
    /// Why there are no images, when there are none.
    pub images_note: Option<String>,
    /// The difference from a baseline the eval stage computed (paired interval).
    pub versus: Option<Versus>,
}

impl EvalRun {
    /// The benchmark and prompt table the scores are of: evaluations that share them
    /// are compared side by side.
    pub fn group(&self) -> (String, String, String) {
        self.scores.first().map_or_else(Default::default, |s| {
            (
                s.benchmark.clone(),
                s.prompt_set.clone(),
                s.prompt_set_version.clone(),
            )
        })
    }
}

/// GRPO's gain over a baseline on the same prompts, as the eval stage reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct Versus {
    pub baseline: String,
    pub baseline_overall: f64,
    pub difference: f64,
    pub ci95: (f64, f64),
}

/// One prompt with its judged images.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PromptResult {
    pub id: String,
    pub prompt: String,
    pub tag: Option<String>,
    pub samples: Vec<Sample>,
}

impl PromptResult {
    /// The mean verdict over the prompt's images (unjudged ones count as wrong).
    pub fn mean(&self) -> f64 {
        let right = self.samples.iter().filter(|s| s.correct).count();
        right as f64 / self.samples.len().max(1) as f64
    }
}

/// One image with its verdict and the rationale written before it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub id: String,
    pub correct: bool,
    pub reason: String,
    pub rationale: Option<String>,
    /// Encoded image bytes, when the generation table was found.
    pub image: Option<Vec<u8>>,
}

/// One training run's curves.
#[derive(Clone, Debug, Default)]
pub struct Training {
    pub node: String,
    pub charts: Vec<Chart>,
}

/// A line chart: named series of (step, value), and an optional interval band.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chart {
    pub title: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// (step, low, high) of the first series.
    pub band: Vec<(f64, f64, f64)>,
}

/// A dataset release's card (Markdown, front matter removed).
#[derive(Clone, Debug, Default)]
pub struct DatasetCard {
    pub node: String,
    pub markdown: String,
}
