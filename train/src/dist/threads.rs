//! The in-process backend: `world` ranks as threads of one process meeting at a shared
//! rendezvous ([`group`]). Each operation is an exchange of every rank's contribution,
//! reduced in rank order, so every rank computes bitwise the same result. For tests and
//! benchmarks on one machine; processes use [`super::mpi`] or [`super::nccl`].

use super::collective::{Collective, check_chunks, check_root};
use crate::janus::error::{JanusError, Result};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// One exchange in progress.
struct Round {
    deposits: Vec<Option<Vec<f32>>>,
    arrived: usize,
    /// Rounds completed.
    generation: u64,
    /// The completed round's contributions, until every rank has read them.
    result: Option<Arc<Vec<Vec<f32>>>>,
    unread: usize,
    /// A rank was dropped (finished or panicked): nobody waits for it.
    gone: Option<usize>,
}

struct Rendezvous {
    world: usize,
    round: Mutex<Round>,
    turn: Condvar,
}

/// One rank of a thread group.
pub struct ThreadRank {
    rank: usize,
    shared: Arc<Rendezvous>,
}

/// The `world` ranks of a new group; hand one to each thread.
pub fn group(world: usize) -> Vec<ThreadRank> {
    let shared = Arc::new(Rendezvous {
        world,
        round: Mutex::new(Round {
            deposits: vec![None; world],
            arrived: 0,
            generation: 0,
            result: None,
            unread: 0,
            gone: None,
        }),
        turn: Condvar::new(),
    });
    (0..world)
        .map(|rank| ThreadRank {
            rank,
            shared: shared.clone(),
        })
        .collect()
}

impl Rendezvous {
    fn lock(&self) -> MutexGuard<'_, Round> {
        self.round.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Round>) -> MutexGuard<'a, Round> {
        self.turn
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every rank's `mine`, in rank order, once all have given theirs.
    fn exchange(&self, rank: usize, mine: Vec<f32>) -> Result<Arc<Vec<Vec<f32>>>> {
        let mut round = self.lock();
        while round.result.is_some() {
            round = self.wait(round);
        }
        round.deposits[rank] = Some(mine);
        round.arrived += 1;
        let generation = round.generation;
        if round.arrived == self.world {
            let all = round
                .deposits
                .iter_mut()
                .map(|d| d.take().expect("every rank has deposited"))
                .collect();
            round.result = Some(Arc::new(all));
            round.arrived = 0;
            round.unread = self.world;
            round.generation += 1;
            self.turn.notify_all();
        } else {
            while round.generation == generation {
                if let Some(gone) = round.gone {
                    return Err(JanusError::Invalid(format!(
                        "rank {rank} waits for rank {gone}, which has left the group"
                    )));
                }
                round = self.wait(round);
            }
        }
        let out = round.result.clone().expect("set by the last rank in");
        round.unread -= 1;
        if round.unread == 0 {
            round.result = None;
            self.turn.notify_all();
        }
        Ok(out)
    }
}

impl Drop for ThreadRank {
    fn drop(&mut self) {
        let mut round = self.shared.lock();
        round.gone = Some(self.rank);
        self.shared.turn.notify_all();
    }
}

impl ThreadRank {
    /// Every rank's buffer, all of `buf`'s length.
    fn gather(&self, what: &str, buf: &[f32]) -> Result<Arc<Vec<Vec<f32>>>> {
        let all = self.shared.exchange(self.rank, buf.to_vec())?;
        if let Some((r, other)) = all.iter().enumerate().find(|(_, b)| b.len() != buf.len()) {
            return Err(JanusError::Invalid(format!(
                "{what}: rank {} gave {} values, rank {r} {}",
                self.rank,
                buf.len(),
                other.len()
            )));
        }
        Ok(all)
    }
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.shared.world
    }

    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let all = self.gather("all_reduce", buf)?;
        for (i, x) in buf.iter_mut().enumerate() {
            *x = all.iter().fold(0.0, |sum, b| sum + b[i]);
        }
        Ok(())
    }

    fn reduce_scatter(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        check_chunks("reduce_scatter", input.len(), out.len(), self.world())?;
        let all = self.gather("reduce_scatter", input)?;
        let start = self.rank * out.len();
        for (i, x) in out.iter_mut().enumerate() {
            *x = all.iter().fold(0.0, |sum, b| sum + b[start + i]);
        }
        Ok(())
    }

    fn all_gather(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        check_chunks("all_gather", out.len(), input.len(), self.world())?;
        let all = self.gather("all_gather", input)?;
        for (chunk, b) in out.chunks_mut(input.len().max(1)).zip(all.iter()) {
            chunk.copy_from_slice(b);
        }
        Ok(())
    }

    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        check_root(root, self.world())?;
        let all = self.gather("broadcast", buf)?;
        buf.copy_from_slice(&all[root]);
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.shared.exchange(self.rank, Vec::new()).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::collective::ReduceOp;

    /// Run `f` on each rank of a group of `world` threads; the results in rank order.
    fn on_ranks<T: Send>(world: usize, f: impl Fn(ThreadRank) -> T + Sync) -> Vec<T> {
        std::thread::scope(|s| {
            let handles: Vec<_> = group(world).into_iter().map(|r| s.spawn(|| f(r))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn every_operation_combines_all_ranks() {
        let out = on_ranks(3, |c| {
            let r = c.rank() as f32;
            let mut sum = vec![r, 10.0 * r];
            c.all_reduce(&mut sum, ReduceOp::Sum).unwrap();
            let mut avg = vec![r];
            c.all_reduce(&mut avg, ReduceOp::Avg).unwrap();
            let mut part = vec![0.0; 2];
            let whole: Vec<f32> = (0..6).map(|i| i as f32 + r).collect();
            c.reduce_scatter(&whole, &mut part).unwrap();
            let mut gathered = vec![0.0; 6];
            c.all_gather(&[r, -r], &mut gathered).unwrap();
            let mut b = vec![r + 1.0];
            c.broadcast(&mut b, 2).unwrap();
            c.barrier().unwrap();
            (sum, avg, part, gathered, b)
        });
        for (rank, (sum, avg, part, gathered, b)) in out.into_iter().enumerate() {
            assert_eq!(sum, vec![3.0, 30.0]);
            assert_eq!(avg, vec![1.0]);
            // Chunk `rank` of each rank's 0..6 + r, summed: 3 (2 rank + i) + 0 + 1 + 2.
            let want: Vec<f32> = (0..2).map(|i| 3.0 * (2 * rank + i) as f32 + 3.0).collect();
            assert_eq!(part, want);
            assert_eq!(gathered, vec![0.0, -0.0, 1.0, -1.0, 2.0, -2.0]);
            assert_eq!(b, vec![3.0]);
        }
    }

    #[test]
    fn mismatched_lengths_and_a_missing_rank_are_errors_not_hangs() {
        let out = on_ranks(2, |c| {
            let mut buf = vec![0.0; 1 + c.rank()];
            c.all_reduce_sum(&mut buf).unwrap_err().to_string()
        });
        assert!(out[0].contains("all_reduce"), "{out:?}");
        let out = on_ranks(2, |c| {
            if c.rank() == 0 {
                return String::new();
            }
            c.barrier().unwrap_err().to_string()
        });
        assert!(out[1].contains("left the group"), "{out:?}");
    }
}
