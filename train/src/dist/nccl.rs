//! The NCCL backend (feature `nccl`): one GPU per process, the `local_rank`-th of its
//! node, through cudarc's safe NCCL API. Rank 0 makes the 128-byte unique id and
//! writes it, create-exclusive, to `nccl_id` in a rendezvous folder every rank sees
//! (written under a temporary name and renamed, so a reader never sees half of it);
//! the others poll for it. The collectives take host buffers, as the trait does: each
//! call copies to the GPU, runs the NCCL operation and copies back. NCCL refuses two
//! ranks on one GPU, so a one-GPU machine runs world 1 only.
//!
//! Not compiled in CI (it needs CUDA); `cargo check -p train --features nccl` on a
//! CUDA machine covers it.

use super::collective::{Collective, check_chunks, check_root};
use super::world::World;
use crate::janus::error::{JanusError, Result};
use candle_core::cuda_backend::cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ID_FILE: &str = "nccl_id";
/// How long the other ranks wait for rank 0's id.
const ID_WAIT: Duration = Duration::from_secs(600);

/// This process's NCCL communicator.
pub struct Nccl {
    comm: Mutex<Comm>,
    stream: Arc<CudaStream>,
    rank: usize,
    world: usize,
}

// SAFETY: the communicator is only used under its lock (NCCL allows one thread at a
// time on a communicator), on its own stream.
unsafe impl Send for Nccl {}
unsafe impl Sync for Nccl {}

fn nccl_err(what: &str, e: impl std::fmt::Debug) -> JanusError {
    JanusError::Invalid(format!("NCCL {what}: {e:?}"))
}

/// Rank 0's id, written by rank 0 and read by the others from `dir`.
fn rendezvous(world: World, dir: &Path) -> Result<Id> {
    let path = dir.join(ID_FILE);
    if world.is_root() {
        let id = Id::new().map_err(|e| nccl_err("unique id", e))?;
        let bytes: Vec<u8> = id.internal().iter().map(|&c| c as u8).collect();
        let tmp = dir.join(format!("{ID_FILE}.tmp"));
        let io = |p: &Path, e| JanusError::io(p, e);
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
            .map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        return Ok(id);
    }
    let start = Instant::now();
    loop {
        if let Ok(bytes) = std::fs::read(&path)
            && bytes.len() == 128
        {
            let mut internal = [0; 128];
            for (d, s) in internal.iter_mut().zip(bytes) {
                *d = s as _;
            }
            return Ok(Id::uninit(internal));
        }
        if start.elapsed() > ID_WAIT {
            return Err(JanusError::Invalid(format!(
                "rank {} waited {ID_WAIT:?} for rank 0's NCCL id at {}",
                world.rank,
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Nccl {
    /// Join the group of `world` on GPU `world.local_rank`, meeting in `dir`.
    pub fn init(world: World, dir: &Path) -> Result<Nccl> {
        let ctx = CudaContext::new(world.local_rank).map_err(|e| nccl_err("CUDA context", e))?;
        let stream = ctx.default_stream();
        let id = rendezvous(world, dir)?;
        let comm = Comm::from_rank(stream.clone(), world.rank, world.size, id)
            .map_err(|e| nccl_err("communicator", e))?;
        Ok(Nccl {
            comm: Mutex::new(comm),
            stream,
            rank: world.rank,
            world: world.size,
        })
    }

    /// `op` on device copies of `input` with an `out_len` output, copied back to `out`.
    fn run(
        &self,
        what: &str,
        input: &[f32],
        out: &mut [f32],
        op: impl FnOnce(&Comm, &CudaSlice<f32>, &mut CudaSlice<f32>) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let comm = self.comm.lock().unwrap_or_else(|p| p.into_inner());
        let send = self
            .stream
            .memcpy_stod(input)
            .map_err(|e| nccl_err(what, e))?;
        let mut recv = self
            .stream
            .alloc_zeros::<f32>(out.len())
            .map_err(|e| nccl_err(what, e))?;
        op(&comm, &send, &mut recv).map_err(|e| nccl_err(what, e))?;
        self.stream
            .memcpy_dtoh(&recv, out)
            .map_err(|e| nccl_err(what, e))?;
        self.stream.synchronize().map_err(|e| nccl_err(what, e))
    }
}

impl Collective for Nccl {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let input = buf.to_vec();
        self.run("all_reduce", &input, buf, |c, s, r| {
            c.all_reduce(s, r, &ReduceOp::Sum)
                .map(drop)
                .map_err(|e| format!("{e:?}"))
        })
    }

    fn reduce_scatter(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        check_chunks("reduce_scatter", input.len(), out.len(), self.world)?;
        self.run("reduce_scatter", input, out, |c, s, r| {
            c.reduce_scatter(s, r, &ReduceOp::Sum)
                .map(drop)
                .map_err(|e| format!("{e:?}"))
        })
    }

    fn all_gather(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        check_chunks("all_gather", out.len(), input.len(), self.world)?;
        self.run("all_gather", input, out, |c, s, r| {
            c.all_gather(s, r).map(drop).map_err(|e| format!("{e:?}"))
        })
    }

    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        check_root(root, self.world)?;
        let input = buf.to_vec();
        self.run("broadcast", &input, buf, |c, s, r| {
            c.broadcast(Some(s), r, root as i32)
                .map(drop)
                .map_err(|e| format!("{e:?}"))
        })
    }

    fn barrier(&self) -> Result<()> {
        self.all_reduce_sum(&mut [0.0]).map(drop)
    }
}
