//! What GRPO's data-parallel ranks exchange beside the gradients: the root's rewards
//! ([`share_outcomes`]) and the values only the rank that trained a micro-batch knows
//! ([`merge`]: the entropy readings that move the controllers, the rollout
//! log-probabilities of the rollout table). Every rank draws the same rollouts (their
//! randomness is keyed per prompt and sample), so nothing else needs agreeing; which
//! micro-batches a rank trains is [`crate::dist::share`]'s, the gradient sum the
//! training core's.

use super::reward::{Outcome, Scored};
use crate::dist::collective::Collective;
use crate::janus::error::{JanusError, Result};
use std::collections::BTreeMap;

/// The rewards of `n` trajectories as the root scored them (`scored`: the root's
/// outcomes, `None` on the other ranks), on every rank alike: the reward as an `f32`
/// (on the root too, so that every rank keeps the same groups) and whether there is
/// one. The other ranks get neither the parts nor the judge's answer, which only the
/// root's rollout table holds. Alone, the outcomes are returned as they are.
pub fn share_outcomes(
    comm: Option<&dyn Collective>,
    scored: Option<Vec<Outcome>>,
    n: usize,
) -> Result<Vec<Outcome>> {
    let Some(comm) = comm else {
        return scored.ok_or_else(|| JanusError::Invalid("no reward to score with".into()));
    };
    let mut buf = vec![0.0f32; 2 * n];
    if let Some(outcomes) = &scored {
        if outcomes.len() != n {
            return Err(JanusError::Invalid(format!(
                "the reward scored {} of {n} trajectories",
                outcomes.len()
            )));
        }
        for (pair, o) in buf.chunks_mut(2).zip(outcomes) {
            if let Ok(s) = o {
                pair.copy_from_slice(&[1.0, s.reward as f32]);
            }
        }
    }
    comm.broadcast(&mut buf, 0)?;
    let shared = buf
        .chunks(2)
        .map(|pair| (pair[0] > 0.0, f64::from(pair[1])));
    Ok(match scored {
        Some(outcomes) => outcomes
            .into_iter()
            .zip(shared)
            .map(|(o, (_, reward))| o.map(|s| Scored { reward, ..s }))
            .collect(),
        None => shared
            .map(|(ok, reward)| match ok {
                true => Ok(Scored {
                    reward,
                    parts: BTreeMap::new(),
                    answer: None,
                    request_key: None,
                }),
                false => Err("the reward failed (scored on rank 0)".to_string()),
            })
            .collect(),
    })
}

/// `values`, each known to one rank (`None` on the others), known to every rank (as
/// `f32`s on a replica; as they are alone).
pub fn merge(comm: Option<&dyn Collective>, values: &mut [Option<f64>]) -> Result<()> {
    let Some(comm) = comm else { return Ok(()) };
    let mut buf: Vec<f32> = values
        .iter()
        .flat_map(|v| [f32::from(v.is_some()), v.unwrap_or(0.0) as f32])
        .collect();
    comm.all_reduce_sum(&mut buf)?;
    for (v, pair) in values.iter_mut().zip(buf.chunks(2)) {
        *v = (pair[0] > 0.0).then_some(f64::from(pair[1]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::threads::group;
    use std::sync::Arc;

    #[test]
    fn the_roots_rewards_and_each_ranks_values_reach_every_rank() {
        let ranks: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = group(2)
                .into_iter()
                .map(|rank| {
                    s.spawn(move || {
                        let comm: Arc<dyn Collective> = Arc::new(rank);
                        let root = comm.rank() == 0;
                        let scored = root.then(|| {
                            vec![
                                Ok(Scored {
                                    reward: 0.1,
                                    parts: BTreeMap::from([("shapes".into(), 0.1)]),
                                    answer: Some("yes".into()),
                                    request_key: None,
                                }),
                                Err("timed out".to_string()),
                            ]
                        });
                        let outcomes = share_outcomes(Some(&*comm), scored, 2).unwrap();
                        let mut values = [None, None, None];
                        values[comm.rank()] = Some(comm.rank() as f64 + 0.5);
                        merge(Some(&*comm), &mut values).unwrap();
                        (outcomes, values)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let reward = f64::from(0.1f32);
        for (rank, (outcomes, values)) in ranks.iter().enumerate() {
            assert_eq!(outcomes[0].as_ref().unwrap().reward, reward, "rank {rank}");
            assert!(outcomes[1].is_err(), "rank {rank}");
            assert_eq!(values, &[Some(0.5), Some(1.5), None], "rank {rank}");
        }
        assert_eq!(
            ranks[0].0[1],
            Err("timed out".to_string()),
            "the root's own"
        );
        assert_eq!(
            ranks[0].0[0].as_ref().unwrap().answer.as_deref(),
            Some("yes")
        );
    }
}
