//! What GRPO's data-parallel ranks exchange beside the gradients: the trajectories
//! each drew ([`exchange`]), the root's rewards ([`share_outcomes`]) and the values
//! only the rank that trained a micro-batch knows ([`merge`]: the entropy readings
//! that move the controllers, the rollout log-probabilities of the rollout table).
//! Token ids travel as `f32`s, exact below 2^24. Which prompts a rank draws and which
//! micro-batches it trains is [`crate::dist::share`]'s, the gradient sum the training
//! core's.

use super::reward::{Outcome, Scored};
use super::rollout::Trajectory;
use crate::dist::collective::Collective;
use crate::janus::error::{JanusError, Result};
use std::collections::BTreeMap;

/// Every row's trajectory on every rank, each drawn by one rank (`None` on the
/// others); alone, they must all be drawn.
pub fn exchange(
    comm: Option<&dyn Collective>,
    drawn: Vec<Option<Trajectory>>,
) -> Result<Vec<Trajectory>> {
    let Some(comm) = comm else {
        return drawn
            .into_iter()
            .map(|t| t.ok_or_else(|| JanusError::Invalid("a trajectory was not drawn".into())))
            .collect();
    };
    // Each row's drawer count, cap and lengths (prompt, rationale, codes); then the tokens.
    let mut shape = vec![0.0f32; 5 * drawn.len()];
    for (row, t) in shape.chunks_mut(5).zip(&drawn) {
        if let Some(t) = t {
            let lengths = [t.prompt_ids.len(), t.rationale_ids.len(), t.codes.len()];
            row.copy_from_slice(&[
                1.0,
                f32::from(u8::from(t.capped)),
                lengths[0] as f32,
                lengths[1] as f32,
                lengths[2] as f32,
            ]);
        }
    }
    comm.all_reduce_sum(&mut shape)?;
    let rows: Vec<&[f32]> = shape.chunks(5).collect();
    if let Some(i) = rows.iter().position(|r| r[0] != 1.0) {
        return Err(JanusError::Invalid(format!(
            "trajectory {i} was drawn by {} ranks, not one",
            rows[i][0]
        )));
    }
    let total: usize = rows.iter().map(|r| (r[2] + r[3] + r[4]) as usize).sum();
    let mut tokens = vec![0.0f32; total];
    let mut at = 0;
    for (r, t) in rows.iter().zip(&drawn) {
        let n = (r[2] + r[3] + r[4]) as usize;
        if let Some(t) = t {
            let ids = t.prompt_ids.iter().chain(&t.rationale_ids).chain(&t.codes);
            for (slot, &id) in tokens[at..at + n].iter_mut().zip(ids) {
                *slot = id as f32;
            }
        }
        at += n;
    }
    comm.all_reduce_sum(&mut tokens)?;
    let mut rest = tokens.as_slice();
    let mut take = |n: f32| -> Vec<u32> {
        let (ids, tail) = rest.split_at(n as usize);
        rest = tail;
        ids.iter().map(|&x| x as u32).collect()
    };
    Ok(rows
        .iter()
        .map(|r| Trajectory {
            capped: r[1] > 0.0,
            prompt_ids: take(r[2]),
            rationale_ids: take(r[3]),
            codes: take(r[4]),
        })
        .collect())
}

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

    fn trajectory(i: usize) -> Trajectory {
        Trajectory {
            prompt_ids: vec![1, 2, 3],
            rationale_ids: (0..i as u32 * 3).map(|x| 100_000 + x).collect(),
            capped: i == 1,
            codes: vec![16_383, i as u32],
        }
    }

    #[test]
    fn trajectories_rewards_and_each_ranks_values_reach_every_rank() {
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
                        // Rank r draws row r.
                        let mut drawn = vec![None, None];
                        drawn[comm.rank()] = Some(trajectory(comm.rank()));
                        let all = exchange(Some(&*comm), drawn).unwrap();
                        assert_eq!(all, vec![trajectory(0), trajectory(1)]);
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
