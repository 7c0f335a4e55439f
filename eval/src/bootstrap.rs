//! Bootstrap confidence intervals for GenEval-style overall scores: prompts are
//! resampled with replacement within each task (so the task mix stays fixed), and the
//! overall score (the mean of task accuracies) is recomputed each time. Paired: two
//! models judged on the same prompts, the same prompts resampled for both, for the
//! interval of the difference of their overall scores.

use datasets::rng::Rng;

/// One task's prompts, each as (correct images, images).
pub type TaskPrompts = Vec<(usize, usize)>;

/// Uniform-ish in `0..n` by the remainder (the resampling's historical draw, kept so
/// intervals stay the same).
fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

fn overall(tasks: &[TaskPrompts]) -> f64 {
    let scores: Vec<f64> = tasks
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (c, n) = t.iter().fold((0, 0), |(c, n), (a, b)| (c + a, n + b));
            c as f64 / n.max(1) as f64
        })
        .collect();
    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

/// The overall score and its `level` (e.g. 0.95) percentile interval over `rounds`
/// stratified resamples.
pub fn overall_interval(
    tasks: &[TaskPrompts],
    rounds: usize,
    level: f64,
    seed: u64,
) -> (f64, f64, f64) {
    let point = overall(tasks);
    let mut rng = Rng::new(seed);
    let mut samples: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let resampled: Vec<TaskPrompts> = tasks
                .iter()
                .map(|t| (0..t.len()).map(|_| t[below(&mut rng, t.len())]).collect())
                .collect();
            overall(&resampled)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let tail = (1.0 - level) / 2.0;
    (point, at(tail), at(1.0 - tail))
}

/// The mean of `values` (one per prompt) and its `level` percentile interval over
/// `rounds` resamples: for scores that are fractions (DPG-Bench, T2I-CompBench).
pub fn mean_interval(values: &[f64], rounds: usize, level: f64, seed: u64) -> (f64, f64, f64) {
    let mean = |v: &mut dyn Iterator<Item = f64>, n: usize| v.sum::<f64>() / n.max(1) as f64;
    let point = mean(&mut values.iter().copied(), values.len());
    if values.is_empty() {
        return (point, point, point);
    }
    let mut rng = Rng::new(seed);
    let mut samples: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let mut draws = (0..values.len()).map(|_| values[below(&mut rng, values.len())]);
            mean(&mut draws, values.len())
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let tail = (1.0 - level) / 2.0;
    (point, at(tail), at(1.0 - tail))
}

/// One task's prompts judged for two models: per prompt, (correct, images) of each.
pub type PairedPrompts = Vec<((usize, usize), (usize, usize))>;

/// The difference of overall scores `b − a` and its `level` percentile interval over
/// `rounds` stratified resamples of the prompts both were judged on.
pub fn paired_difference(
    tasks: &[PairedPrompts],
    rounds: usize,
    level: f64,
    seed: u64,
) -> (f64, f64, f64) {
    let split = |t: &[PairedPrompts]| -> (Vec<TaskPrompts>, Vec<TaskPrompts>) {
        t.iter()
            .map(|p| p.iter().copied().unzip::<_, _, TaskPrompts, TaskPrompts>())
            .unzip()
    };
    let diff = |t: &[PairedPrompts]| {
        let (a, b) = split(t);
        overall(&b) - overall(&a)
    };
    let point = diff(tasks);
    let mut rng = Rng::new(seed);
    let mut samples: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let resampled: Vec<PairedPrompts> = tasks
                .iter()
                .map(|t| (0..t.len()).map(|_| t[below(&mut rng, t.len())]).collect())
                .collect();
            diff(&resampled)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let tail = (1.0 - level) / 2.0;
    (point, at(tail), at(1.0 - tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_contains_the_point_and_narrows_with_more_prompts() {
        let few: Vec<TaskPrompts> = vec![vec![(1, 1), (0, 1), (1, 1), (0, 1)]; 6];
        let many: Vec<TaskPrompts> = vec![[(1, 1), (0, 1)].repeat(50); 6];
        let (p, lo, hi) = overall_interval(&few, 2000, 0.95, 1);
        assert!((p - 0.5).abs() < 1e-9 && lo <= p && p <= hi);
        let (p2, lo2, hi2) = overall_interval(&many, 2000, 0.95, 1);
        assert!((p2 - 0.5).abs() < 1e-9);
        assert!(hi2 - lo2 < hi - lo, "{lo2}..{hi2} vs {lo}..{hi}");
        let all_right: Vec<TaskPrompts> = vec![vec![(4, 4); 10]; 6];
        assert_eq!(overall_interval(&all_right, 100, 0.95, 1), (1.0, 1.0, 1.0));
    }

    #[test]
    fn the_mean_interval_holds_the_mean_and_collapses_on_constant_values() {
        let v: Vec<f64> = (0..100).map(|i| f64::from(i % 10) / 10.0).collect();
        let (m, lo, hi) = mean_interval(&v, 1000, 0.95, 3);
        assert!(
            (m - 0.45).abs() < 1e-9 && lo < m && m < hi && hi - lo < 0.2,
            "{m} {lo}..{hi}"
        );
        assert_eq!(mean_interval(&[0.5; 12], 100, 0.95, 3), (0.5, 0.5, 0.5));
    }

    #[test]
    fn the_paired_difference_sees_a_consistent_gain_that_unpaired_intervals_blur() {
        // 40 prompts of one task: b gets one more image right (of 4) on every prompt,
        // over scores that vary a lot from prompt to prompt.
        let task: PairedPrompts = (0..40).map(|i| ((i % 4, 4), (i % 4 + 1, 4))).collect();
        let (d, lo, hi) = paired_difference(std::slice::from_ref(&task), 2000, 0.95, 1);
        assert!((d - 0.25).abs() < 1e-9 && lo <= d && d <= hi);
        assert!(
            (lo - 0.25).abs() < 1e-9,
            "every resample gains 0.25: {lo}..{hi}"
        );
        // No gain at all: an interval around 0.
        let same: PairedPrompts = task.iter().map(|&(a, _)| (a, a)).collect();
        assert_eq!(paired_difference(&[same], 500, 0.95, 1), (0.0, 0.0, 0.0));
        // A gain on half the prompts and as large a loss on the other half: an interval
        // across 0.
        let mixed: PairedPrompts = (0..40)
            .map(|i| {
                if i % 2 == 0 {
                    ((1, 4), (2, 4))
                } else {
                    ((3, 4), (2, 4))
                }
            })
            .collect();
        let (d, lo, hi) = paired_difference(&[mixed], 2000, 0.95, 1);
        assert!(lo < 0.0 && hi > 0.0 && d.abs() < 1e-9, "{d} {lo}..{hi}");
    }
}
