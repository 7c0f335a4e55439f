//! Data-parallel training: the [`collective::Collective`] interface and its backends —
//! threads in one process ([`threads`], for tests), Open MPI loaded at run time
//! ([`mpi`]) and NCCL through cudarc behind the `nccl` feature ([`nccl`]) — this
//! process's place in a launched group ([`world`]), the parameters as one flat vector
//! ([`flat`]) and ZeRO-1's sharded optimiser ([`zero`]). The stages' `data_parallel`
//! setting ([`DataParallel`]) and opening its collective ([`connect`]) are here too.
//! The step that uses them is the training core's
//! ([`crate::core::stepper::Stepper`]); launching the ranks (`mpirun`, `srun`) is not
//! this crate's.

pub mod collective;
pub mod flat;
pub mod mpi;
#[cfg(feature = "nccl")]
pub mod nccl;
pub mod threads;
pub mod world;
pub mod zero;

use crate::janus::error::{JanusError, Result};
use collective::Collective;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use world::World;

/// Which collective the ranks use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Ranks as threads of one process (tests and benchmarks).
    Threads,
    /// Open MPI: processes launched by `mpirun` or `srun`.
    #[default]
    Mpi,
    /// NCCL, one GPU per process (a build with the `nccl` feature).
    Nccl,
}

/// A stage's `data_parallel` setting. The default (absent from the config, so run keys
/// stay as they were) is one rank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataParallel {
    #[serde(default)]
    pub backend: Backend,
    /// The ranks the run expects (1: no data parallelism); a launched world of
    /// another size is an error.
    #[serde(default = "one")]
    pub ranks: usize,
    /// ZeRO stage: 0 (every rank keeps the whole optimiser state) or 1 (each keeps 1/N).
    #[serde(default)]
    pub zero: u8,
}

fn one() -> usize {
    1
}

impl Default for DataParallel {
    fn default() -> Self {
        DataParallel {
            backend: Backend::default(),
            ranks: 1,
            zero: 0,
        }
    }
}

impl DataParallel {
    /// One rank, as without the setting (then it is left out of the config's JSON).
    pub fn is_single(&self) -> bool {
        *self == DataParallel::default()
    }

    /// Settings that cannot run.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.ranks == 0 {
            return Err("data_parallel.ranks must be at least 1".into());
        }
        if self.zero > 1 {
            return Err(format!(
                "data_parallel.zero {} is not a supported ZeRO stage (0 or 1)",
                self.zero
            ));
        }
        Ok(())
    }
}

/// Rank `rank`'s share of a step's micro-batches: `rank`, `rank + world`, … (all of
/// them alone).
pub fn share<T>(items: &[T], rank: usize, world: usize) -> impl Iterator<Item = &T> {
    items.iter().skip(rank).step_by(world.max(1))
}

/// What the training core needs of a data-parallel run: the collective and whether the
/// optimiser state is sharded (ZeRO-1).
#[derive(Clone)]
pub struct Replica {
    pub comm: Arc<dyn Collective>,
    pub zero1: bool,
}

/// This process's replica for `setting`, in the launched `world`: `None` without the
/// setting or for one rank (except NCCL, which runs at world 1 too); the MPI or NCCL group otherwise, NCCL's
/// ranks meeting in the folder `rendezvous`. Thread ranks are made in-process by
/// whoever starts the threads ([`threads::group`]), not here.
pub fn connect(
    setting: &DataParallel,
    world: World,
    #[cfg_attr(not(feature = "nccl"), allow(unused_variables))] rendezvous: &std::path::Path,
) -> Result<Option<Replica>> {
    setting.check().map_err(JanusError::Invalid)?;
    if setting.is_single() {
        // Whatever the launcher says: a run without the setting trains alone.
        return Ok(None);
    }
    if setting.ranks != world.size {
        return Err(JanusError::Invalid(format!(
            "data_parallel.ranks is {} but the process was launched in a world of {} \
             (mpirun -n / srun --ntasks)",
            setting.ranks, world.size
        )));
    }
    if world.size == 1 && setting.backend != Backend::Nccl {
        return Ok(None);
    }
    let comm: Arc<dyn Collective> = match setting.backend {
        Backend::Mpi => Arc::new(mpi::Mpi::init()?),
        #[cfg(feature = "nccl")]
        Backend::Nccl => Arc::new(nccl::Nccl::init(world, rendezvous)?),
        #[cfg(not(feature = "nccl"))]
        Backend::Nccl => {
            return Err(JanusError::Invalid(
                "data_parallel.backend nccl needs a build with the `nccl` feature".into(),
            ));
        }
        Backend::Threads => {
            return Err(JanusError::Invalid(
                "data_parallel.backend threads is for tests and benchmarks in one process; \
                 a stage runs its ranks as processes (mpi or nccl)"
                    .into(),
            ));
        }
    };
    if comm.world() != world.size || comm.rank() != world.rank {
        return Err(JanusError::Invalid(format!(
            "the collective sees rank {} of {}, the launcher rank {} of {}",
            comm.rank(),
            comm.world(),
            world.rank,
            world.size
        )));
    }
    Ok(Some(Replica {
        comm,
        zero1: setting.zero == 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_setting_and_the_launched_world_must_agree() {
        let two = World {
            rank: 1,
            size: 2,
            local_rank: 1,
        };
        let none = connect(&DataParallel::default(), two, Path::new("."));
        assert!(
            none.unwrap().is_none(),
            "no setting: alone, whatever srun says"
        );
        let setting = DataParallel {
            ranks: 4,
            ..DataParallel::default()
        };
        let e = connect(&setting, two, Path::new(".")).err().unwrap();
        assert!(
            e.to_string().contains("ranks is 4") && e.to_string().contains("world of 2"),
            "{e}"
        );
        let threads = DataParallel {
            backend: Backend::Threads,
            ranks: 2,
            zero: 1,
        };
        let e = connect(&threads, two, Path::new(".")).err().unwrap();
        assert!(e.to_string().contains("threads"), "{e}");
        let bad = DataParallel { zero: 3, ..threads };
        let e = connect(&bad, two, Path::new(".")).err().unwrap();
        assert!(e.to_string().contains("zero 3"), "{e}");
    }
}
