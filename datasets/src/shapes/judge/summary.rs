//! Scores over many images in GenEval's summary format (`summary_scores.py`): images
//! and prompts correct, each task's accuracy in order of first appearance, and the
//! overall score, the unweighted mean of the task scores.

use crate::shapes::metadata::{Metadata, Task};
use std::collections::BTreeMap;
use std::fmt;

/// One task's count of correct images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskScore {
    pub task: Task,
    pub correct: usize,
    pub total: usize,
}

impl TaskScore {
    /// `correct / total` (0 for no images).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }
}

/// A summary of judged images.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Judged images.
    pub images: usize,
    /// Distinct records (GenEval groups by the metadata's JSON).
    pub prompts: usize,
    /// Images judged correct.
    pub correct_images: usize,
    /// Records with at least one correct image.
    pub correct_prompts: usize,
    /// In order of first appearance, as GenEval prints them.
    pub tasks: Vec<TaskScore>,
}

impl Summary {
    /// Summarises `(record, correct)` pairs, one per image.
    pub fn new<'a>(results: impl IntoIterator<Item = (&'a Metadata, bool)>) -> Summary {
        let mut tasks: Vec<TaskScore> = Vec::new();
        let mut prompts: BTreeMap<String, bool> = BTreeMap::new();
        let (mut images, mut correct_images) = (0, 0);
        for (metadata, correct) in results {
            images += 1;
            correct_images += usize::from(correct);
            *prompts.entry(metadata.to_json()).or_default() |= correct;
            let i = match tasks.iter().position(|t| t.task == metadata.tag) {
                Some(i) => i,
                None => {
                    tasks.push(TaskScore {
                        task: metadata.tag,
                        correct: 0,
                        total: 0,
                    });
                    tasks.len() - 1
                }
            };
            tasks[i].correct += usize::from(correct);
            tasks[i].total += 1;
        }
        Summary {
            images,
            prompts: prompts.len(),
            correct_images,
            correct_prompts: prompts.values().filter(|&&c| c).count(),
            tasks,
        }
    }

    /// The accuracy of one task, if any image had it.
    pub fn task(&self, task: Task) -> Option<f64> {
        self.tasks
            .iter()
            .find(|t| t.task == task)
            .map(TaskScore::accuracy)
    }

    /// GenEval's overall score: the mean of the task scores, over GenEval's six tasks
    /// (a `scene` task is listed in the breakdown but left out of the mean); 0 when no
    /// GenEval task was judged.
    pub fn overall(&self) -> f64 {
        let scores: Vec<f64> = self
            .tasks
            .iter()
            .filter(|t| t.task != Task::Scene)
            .map(TaskScore::accuracy)
            .collect();
        if scores.is_empty() {
            0.0
        } else {
            scores.iter().sum::<f64>() / scores.len() as f64
        }
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

impl fmt::Display for Summary {
    /// Prints as GenEval's `summary_scores.py` does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Summary\n=======")?;
        writeln!(f, "Total images: {}", self.images)?;
        writeln!(f, "Total prompts: {}", self.prompts)?;
        writeln!(
            f,
            "% correct images: {:.2}%",
            percent(self.correct_images, self.images)
        )?;
        writeln!(
            f,
            "% correct prompts: {:.2}%",
            percent(self.correct_prompts, self.prompts)
        )?;
        writeln!(f, "\nTask breakdown\n==============")?;
        for t in &self.tasks {
            writeln!(
                f,
                "{:<16} = {:.2}% ({} / {})",
                t.task.tag(),
                100.0 * t.accuracy(),
                t.correct,
                t.total
            )?;
        }
        writeln!(
            f,
            "\nOverall score (avg. over tasks): {:.5}",
            self.overall()
        )
    }
}
