//! [`detour`]: a tensor whose value was computed off the graph and whose gradient with
//! respect to one input a closure gives. candle records a node per op and
//! differentiates it by a fixed rule; a detour replaces the whole sub-graph between
//! `x` and `y` by one node, so that nothing of it is kept for the backward and the
//! backward does only what the closure does. Activation checkpointing
//! ([`super::checkpointing`]) and the frozen LoRA base ([`super::lora`]) are built on
//! it. What the closure computes, and where gradients other than `x`'s go, is theirs.
//!
//! The node is a `CustomOp1` on `x` whose forward hands out a copy of `y` (a custom op
//! cannot adopt a storage, it must return a new one) and whose `bwd` calls the closure.

use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};
use std::sync::Mutex;

/// d loss / d x from x and d loss / d y.
type Backward = Box<dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync>;

struct Detour {
    /// `y`, until the forward has copied it.
    output: Mutex<Option<Tensor>>,
    backward: Backward,
}

fn copy<S>(storage: &S, layout: &Layout) -> Result<(S, Shape)>
where
    S: BackendStorage,
    S::Device: BackendDevice<Storage = S>,
{
    // SAFETY: every element of the new storage is written by the strided copy.
    let mut out = unsafe {
        storage
            .device()
            .alloc_uninit(layout.shape(), storage.dtype())?
    };
    storage.copy_strided_src(&mut out, 0, layout)?;
    Ok((out, layout.shape().clone()))
}

impl Detour {
    fn take(&self) -> Result<Tensor> {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| candle_core::Error::Msg("a detour's forward runs once".into()))
    }
}

impl CustomOp1 for Detour {
    fn name(&self) -> &'static str {
        "detour"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = self.take()?;
        let (storage, layout) = y.storage_and_layout();
        match &*storage {
            Storage::Cpu(s) => copy(s, layout),
            _ => candle_core::bail!("detour: the output is not on the CPU as its input"),
        }
    }

    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> Result<(CudaStorage, Shape)> {
        let y = self.take()?;
        let (storage, layout) = y.storage_and_layout();
        match &*storage {
            Storage::Cuda(s) => copy(s, layout),
            _ => candle_core::bail!("detour: the output is not on the GPU as its input"),
        }
    }

    fn bwd(&self, arg: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        (self.backward)(arg, grad).map(Some)
    }
}

/// A tensor equal to `y` (computed from `x`, detached), whose gradient with respect to
/// `x` is `backward(x, d loss / d y)`. When `x` records no gradient, `y` itself.
pub fn detour(
    x: &Tensor,
    y: Tensor,
    backward: impl Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync + 'static,
) -> Result<Tensor> {
    if !x.track_op() {
        return Ok(y);
    }
    if x.device().location() != y.device().location() {
        candle_core::bail!("detour: x is on {:?}, y on {:?}", x.device(), y.device())
    }
    x.apply_op1(Detour {
        output: Mutex::new(Some(y.detach())),
        backward: Box::new(backward),
    })
}
