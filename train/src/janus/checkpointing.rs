//! Activation checkpointing: a block (one decoder layer) whose forward keeps only its
//! input, and whose backward runs the block again with gradients.
//!
//! How the gradients get where the optimiser reads them. candle's backward walks the
//! graph from the loss and keeps one `GradStore`; a custom op's `bwd` can return only
//! its input's gradient. So [`Checkpointing::apply`] runs the block on a detached input
//! (no graph is kept) and joins output to input with a [`detour`]; the detour's
//! backward copies the input into a fresh leaf `Var`, runs the block on it, and calls
//! `backward` on `sum(y · dy)` (whose gradient with respect to y is exactly `dy`). That
//! nested store holds the input's gradient, returned to the outer backward, and the
//! gradients of the block's own leaves: the parameters' `Var`s, which the outer graph
//! never sees (through the BF16 casts, when computing in BF16, the nested backward
//! reaches the FP32 masters as the plain one does). Those are added into the
//! [`Checkpointing`]'s own store; whoever called `backward` on the loss then moves them
//! into its store with [`Checkpointing::drain_into`] ([`crate::core::stepper`] does),
//! summing where both hold one (a parameter used inside and outside the blocks).
//!
//! The recomputation must be the same function as the forward: no dropout, no cache.
//! What is kept per block is its input; at the backward, one block's activations.

use super::detour::detour;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use std::sync::{Arc, Mutex};

/// The parameter gradients of the blocks recomputed since the last drain.
#[derive(Clone, Default)]
pub struct Checkpointing {
    grads: Arc<Mutex<GradStore>>,
}

impl Checkpointing {
    pub fn new() -> Self {
        Self::default()
    }

    /// `block(x)`, keeping only `x` for the backward (see the module documentation).
    pub fn apply(
        &self,
        x: &Tensor,
        block: impl Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static,
    ) -> Result<Tensor> {
        if !x.track_op() {
            return block(x);
        }
        let y = block(&x.detach())?.detach();
        let grads = self.grads.clone();
        detour(x, y, move |x, dy| {
            let leaf = Var::from_tensor(&x.detach())?;
            let y = block(leaf.as_tensor())?;
            let objective = (y * dy)?.sum_all()?;
            let mut store = objective.backward()?;
            let dx = store
                .remove(leaf.as_tensor())
                .map_or_else(|| leaf.as_tensor().zeros_like(), Ok)?;
            let mut params = GradStore::default();
            for node in objective.sorted_nodes() {
                if node.is_variable()
                    && let Some(g) = store.remove(node)
                {
                    params.insert(node, g);
                }
            }
            grads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(params)?;
            Ok(dx)
        })
    }

    /// Move the parameter gradients gathered so far into `store`, adding where it
    /// holds one already.
    pub fn drain_into(&self, store: &mut GradStore) -> Result<()> {
        let taken = std::mem::take(&mut *self.grads.lock().unwrap_or_else(|p| p.into_inner()));
        store.extend(taken)
    }
}
