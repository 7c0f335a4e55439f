//! What a training run holds in memory, for the stage's report: the process's peak
//! resident set ([`peak_rss_bytes`], Linux's `VmHWM`) and the byte counts of the
//! training state ([`Memory`]). Measuring the device's memory is not here.

use serde::Serialize;

/// Memory figures a training stage reports in its meta.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Memory {
    /// The FP32 master parameters.
    pub parameter_bytes: usize,
    /// The trainable parameters (the LoRA adapters alone with LoRA).
    pub trainable_parameters: usize,
    /// The FP32 gradients accumulated over a step (one per trainable parameter).
    pub gradient_bytes: usize,
    /// The frozen weights of a LoRA run, in the compute dtype (0 without LoRA).
    pub frozen_bytes: usize,
    /// The optimiser's moments (and their scales).
    pub optimizer_state_bytes: usize,
    /// The process's peak resident set so far (None where the system does not say).
    pub peak_rss_bytes: Option<u64>,
}

/// The process's peak resident set size: `VmHWM` of `/proc/self/status` (Linux only).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// `VmHWM:   1234 kB` → 1234 × 1024.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let kb: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_read_in_kilobytes_and_grows_with_a_touched_allocation() {
        assert_eq!(
            parse_vm_hwm("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t 1 kB\n"),
            Some(2 << 20)
        );
        assert_eq!(parse_vm_hwm("VmRSS:\t 1 kB\n"), None);
        if cfg!(target_os = "linux") {
            let before = peak_rss_bytes().expect("Linux reports VmHWM");
            let big = vec![1u8; 256 << 20];
            let after = peak_rss_bytes().unwrap();
            assert!(big.iter().step_by(4096).all(|&b| b == 1));
            assert!(after >= before + (200 << 20), "{before} → {after}");
        }
    }
}
