//! What a child process costs: wall time, CPU time (user + system of the child and of
//! every descendant it waited for, from `wait4`), the largest resident set of any one
//! of those processes (`ru_maxrss`), and the peak memory of its whole process tree
//! (proportional set sizes summed over the tree, sampled every 20 ms, so that a tool
//! that forks workers is charged for all of them and shared pages are counted once).

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The cost of one child process.
#[derive(Clone, Debug)]
pub struct Measured {
    pub wall: f64,
    pub cpu: f64,
    /// Largest resident set of one process, MiB.
    pub max_rss_mib: f64,
    /// Peak of the tree's summed proportional set size, MiB.
    pub peak_tree_mib: f64,
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

/// Run `cmd` to its end, measuring it.
pub fn run(cmd: &mut Command) -> Result<Measured> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak_kib = 0u64;
            while !done.load(Ordering::Relaxed) {
                peak_kib = peak_kib.max(tree_pss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak_kib
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed `rusage` is valid; `wait4` fills it and `status` for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    if waited != pid {
        bail!("waiting for {cmd:?}: {}", std::io::Error::last_os_error());
    }
    // The child is reaped: `Child` must not wait for it again (dropping it does not).
    drop(child);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Measured {
        wall,
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        peak_tree_mib: sampler.join().unwrap_or(0) as f64 / 1024.0,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    })
}

/// `pid` and its descendants (from `/proc/PID/task/TID/children`).
fn tree(pid: libc::pid_t) -> Vec<libc::pid_t> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                let children = std::fs::read_to_string(task.path().join("children"));
                all.extend(
                    children
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|c| c.parse::<libc::pid_t>().ok()),
                );
            }
        }
        i += 1;
    }
    all
}

/// The summed proportional set size of `pid`'s tree, KiB (0 once it is gone).
fn tree_pss_kib(pid: libc::pid_t) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}
