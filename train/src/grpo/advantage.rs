//! Group-normalised advantages (paper.md §3.3) and which groups dynamic sampling keeps.
//!
//! A prompt's trajectories form a group; each scored one gets `(r − mean) / (std + ε)`
//! with the unbiased standard deviation over the group's scored members and ε = 1e-6
//! (a group of one: mean 0 and std 1, as verl). A trajectory the judge failed on has
//! no reward: it is left out of the statistics and of the update. A group is
//! informative when its scored rewards are not all equal (or it has a single scored
//! member), as the DAPO-style filter keeps it.

/// The ε of the normalisation.
pub const EPS: f64 = 1e-6;

/// The advantage of each member (`None`: no reward, left out).
pub fn advantages(rewards: &[Option<f64>]) -> Vec<Option<f64>> {
    let scored: Vec<f64> = rewards.iter().flatten().copied().collect();
    let n = scored.len();
    let (mean, std) = if n <= 1 {
        (0.0, 1.0)
    } else {
        let mean = scored.iter().sum::<f64>() / n as f64;
        let var = scored.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (mean, var.sqrt())
    };
    rewards
        .iter()
        .map(|r| r.map(|r| (r - mean) / (std + EPS)))
        .collect()
}

/// Whether a group teaches anything: at least one scored member, and either one only or
/// rewards that differ.
pub fn informative(rewards: &[Option<f64>]) -> bool {
    let mut scored = rewards.iter().flatten();
    match scored.next() {
        None => false,
        Some(first) => {
            let mut rest = scored.peekable();
            rest.peek().is_none() || rest.any(|r| r != first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn one_success_in_eight_by_hand() {
        // Mean 1/8; unbiased variance (7·(1/8)² + (7/8)²)/7 = 1/8, std 0.353553.
        let mut rewards = vec![Some(0.0); 8];
        rewards[3] = Some(1.0);
        let a = advantages(&rewards);
        let std = (0.125f64).sqrt();
        assert!(close(a[3].unwrap(), 0.875 / (std + EPS)), "{a:?}");
        assert!(close(a[0].unwrap(), -0.125 / (std + EPS)));
        assert!((a[3].unwrap() - 2.474_87).abs() < 1e-5, "{}", a[3].unwrap());
        assert!(
            close(a.iter().flatten().sum::<f64>(), 0.0),
            "they sum to zero"
        );
    }

    #[test]
    fn equal_rewards_give_zero_and_are_not_informative() {
        let same = vec![Some(1.0); 4];
        assert_eq!(advantages(&same), vec![Some(0.0); 4]);
        assert!(!informative(&same));
        assert!(informative(&[Some(1.0), Some(0.0)]));
        assert!(informative(&[Some(1.0)]), "a group of one is kept, as verl");
        assert!(!informative(&[None, None]));
    }

    #[test]
    fn failed_members_are_left_out_of_the_statistics() {
        let a = advantages(&[Some(1.0), None, Some(0.0)]);
        // Over {1, 0}: mean 0.5, unbiased std √0.5.
        let std = 0.5f64.sqrt();
        assert_eq!(a[1], None);
        assert!(close(a[0].unwrap(), 0.5 / (std + EPS)));
        assert!(close(a[2].unwrap(), -0.5 / (std + EPS)));
        assert!(!informative(&[Some(1.0), None, Some(1.0)]));
        // A single scored member: mean 0, std 1.
        assert!(close(
            advantages(&[None, Some(1.0)])[1].unwrap(),
            1.0 / (1.0 + EPS)
        ));
    }
}
