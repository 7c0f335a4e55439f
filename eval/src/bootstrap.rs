//! Bootstrap confidence intervals for GenEval-style overall scores: prompts are
//! resampled with replacement within each task (so the task mix stays fixed), and the
//! overall score (the mean of task accuracies) is recomputed each time.

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
}
