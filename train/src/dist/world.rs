//! Where this process stands in a launched group: its rank, the world size and its
//! rank on this node, read from the launcher's environment — Open MPI's `mpirun`
//! (`OMPI_COMM_WORLD_*`) or Slurm's `srun` (`SLURM_PROCID`, `SLURM_NTASKS`,
//! `SLURM_LOCALID`); a process started alone is rank 0 of 1. Opening the collective
//! over it is [`super::connect`]'s.

use crate::janus::error::{JanusError, Result};

/// This process's place in the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct World {
    pub rank: usize,
    pub size: usize,
    /// The rank among this node's processes (picks the GPU).
    pub local_rank: usize,
}

impl World {
    pub const SINGLE: World = World {
        rank: 0,
        size: 1,
        local_rank: 0,
    };

    /// From the process environment.
    pub fn detect() -> Result<World> {
        World::from_env(|k| std::env::var(k).ok())
    }

    /// From the variables `var` gives: Open MPI's first, then Slurm's, else a single
    /// process. A variable that is set but not a number, or a rank outside the world,
    /// is an error naming it.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<World> {
        const LAUNCHERS: [[&str; 3]; 2] = [
            [
                "OMPI_COMM_WORLD_RANK",
                "OMPI_COMM_WORLD_SIZE",
                "OMPI_COMM_WORLD_LOCAL_RANK",
            ],
            ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"],
        ];
        for [rank, size, local] in LAUNCHERS {
            let Some(rank_text) = var(rank) else { continue };
            let number = |name: &str, text: Option<String>| -> Result<usize> {
                let text = text.ok_or_else(|| {
                    JanusError::Invalid(format!("{rank} is set but {name} is not"))
                })?;
                text.trim()
                    .parse()
                    .map_err(|_| JanusError::Invalid(format!("{name}={text:?} is not a number")))
            };
            let world = World {
                rank: number(rank, Some(rank_text))?,
                size: number(size, var(size))?,
                local_rank: number(local, var(local))?,
            };
            if world.rank >= world.size {
                return Err(JanusError::Invalid(format!(
                    "{rank}={} is outside {size}={}",
                    world.rank, world.size
                )));
            }
            return Ok(world);
        }
        Ok(World::SINGLE)
    }

    /// Rank 0 publishes outputs and checkpoints; the others only train.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn world(vars: &[(&str, &str)]) -> Result<World> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        World::from_env(|k| map.get(k).cloned())
    }

    #[test]
    fn mpirun_slurm_and_a_lone_process_are_told_apart() {
        assert_eq!(world(&[]).unwrap(), World::SINGLE);
        let ompi = world(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
        ])
        .unwrap();
        assert_eq!((ompi.rank, ompi.size, ompi.local_rank), (1, 2, 1));
        let slurm = world(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
        ])
        .unwrap();
        assert_eq!((slurm.rank, slurm.size, slurm.local_rank), (5, 8, 1));
        assert!(!slurm.is_root());
    }

    #[test]
    fn bad_variables_are_named() {
        let e = world(&[("SLURM_PROCID", "x"), ("SLURM_NTASKS", "2")]).unwrap_err();
        assert!(e.to_string().contains("SLURM_PROCID"), "{e}");
        let e = world(&[("SLURM_PROCID", "0")]).unwrap_err();
        assert!(e.to_string().contains("SLURM_NTASKS"), "{e}");
        let e = world(&[
            ("OMPI_COMM_WORLD_RANK", "2"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "0"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
    }
}
