//! Which GPUs a node opens: the local scheduler gives each running node its own
//! ordinals out of `--gpus` ([`DevicePool`]); a node started by a batch system reads
//! the devices it was given from `CUDA_VISIBLE_DEVICES` ([`visible_devices`]). Planning
//! never picks a device.

use std::collections::BTreeSet;

/// The GPU ordinals of one machine that no running node holds.
#[derive(Debug)]
pub struct DevicePool {
    free: BTreeSet<u32>,
}

impl DevicePool {
    /// Ordinals `0..gpus`, all free.
    pub fn new(gpus: u32) -> Self {
        DevicePool {
            free: (0..gpus).collect(),
        }
    }

    /// The `n` lowest free ordinals. The scheduler only starts a node whose GPUs fit,
    /// so there are always enough.
    pub fn take(&mut self, n: u32) -> Vec<u32> {
        let got: Vec<u32> = self.free.iter().copied().take(n as usize).collect();
        assert_eq!(
            got.len(),
            n as usize,
            "the scheduler granted more GPUs than free"
        );
        for d in &got {
            self.free.remove(d);
        }
        got
    }

    pub fn give_back(&mut self, ordinals: Vec<u32>) {
        self.free.extend(ordinals);
    }
}

/// The ordinals a process opens when a batch system set `CUDA_VISIBLE_DEVICES` to
/// `value`: CUDA renumbers the visible devices from 0, so `"3,5"` gives `[0, 1]`.
/// Unset or empty gives none.
pub fn visible_devices(value: Option<&str>) -> Vec<u32> {
    match value.map(str::trim) {
        None | Some("") => Vec::new(),
        Some(v) => (0..v.split(',').filter(|s| !s.trim().is_empty()).count() as u32).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_holding_gpus_get_distinct_ordinals_and_return_them() {
        let mut pool = DevicePool::new(3);
        let a = pool.take(1);
        let b = pool.take(2);
        assert_eq!((a.clone(), b.clone()), (vec![0], vec![1, 2]));
        pool.give_back(a);
        assert_eq!(pool.take(1), vec![0]);
        pool.give_back(b);
        assert_eq!(pool.take(2), vec![1, 2]);
    }

    #[test]
    fn visible_devices_are_renumbered_from_zero() {
        assert_eq!(visible_devices(None), Vec::<u32>::new());
        assert_eq!(visible_devices(Some("")), Vec::<u32>::new());
        assert_eq!(visible_devices(Some("3,5")), vec![0, 1]);
        assert_eq!(visible_devices(Some("GPU-1f2e")), vec![0]);
    }
}
