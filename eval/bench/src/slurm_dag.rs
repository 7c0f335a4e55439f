//! The Slurm executor's overhead: the `bench dag` recipe run with `--executor slurm`
//! (every node a batch job running `reasongen exec-node`). For each node it sets the
//! controller's wall (from the job's submission to the controller finding the node's
//! result in the store) beside Slurm's own latency for the same job (its submit, start
//! and end times, read with `squeue` while the run goes on); the difference is what the
//! controller adds. It also times the cold run and the no-op re-run (no job submitted).
//! It needs a Slurm cluster that can see the work folder (`scripts/ci/slurm.sh` starts
//! a loopback one).

use crate::dag::{recipe_folder, timed};
use anyhow::{Context, Result, ensure};
use pipeline::events::{Event, read_events};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(clap::Args)]
pub struct SlurmDagBenchArgs {
    /// Nodes in the recipe.
    #[arg(long, default_value_t = 200)]
    nodes: usize,
    /// Rows in the source tables, in total (small: the jobs, not the rows, are measured).
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    /// Source tables (the other nodes filter them).
    #[arg(long, default_value_t = 10)]
    sources: usize,
    /// Milliseconds between the controller's polls of its jobs.
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
    /// Work folder (default: a temporary one; it must be visible to the cluster).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Slurm's times of one job, in seconds (Slurm's resolution).
#[derive(Clone, Copy, Debug)]
struct SlurmTimes {
    submit: i64,
    start: i64,
    end: i64,
}

/// `YYYY-MM-DDTHH:MM:SS` as seconds since 1970 (the zone cancels out in differences).
fn slurm_seconds(t: &str) -> Option<i64> {
    let (date, time) = t.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let h: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (&[y, m, day], &[hh, mm, ss]) = (&d[..], &h[..]) else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hh * 3600 + mm * 60 + ss)
}

/// Finished jobs' times as `squeue -t all` lists them now, by job id.
fn poll_squeue(into: &Mutex<BTreeMap<String, SlurmTimes>>) {
    let Ok(out) = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%i|%V|%S|%e|%T"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() == 5 && f[4] == "COMPLETED" {
            let times = (
                slurm_seconds(f[1]),
                slurm_seconds(f[2]),
                slurm_seconds(f[3]),
            );
            if let (Some(submit), Some(start), Some(end)) = times {
                into.lock()
                    .unwrap()
                    .insert(f[0].to_string(), SlurmTimes { submit, start, end });
            }
        }
    }
}

/// Per node of the cold run: the job id and the controller's wall in ms, from the
/// controller's `submitted` and `done` messages.
fn controller_walls(events_path: &Path) -> Result<BTreeMap<String, (String, u64)>> {
    let mut submitted: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for e in read_events(events_path).with_context(|| events_path.display().to_string())? {
        if let Event::Message { node, text, .. } = &e.event {
            let mut words = text.split_whitespace();
            if let (Some("Slurm"), Some("job"), Some(id), Some(what)) =
                (words.next(), words.next(), words.next(), words.next())
            {
                match what {
                    "submitted" => {
                        submitted.insert(node.clone(), (id.to_string(), e.ts_ms));
                    }
                    "done:" => {
                        if let Some((sid, t0)) = submitted.get(node)
                            && sid == id
                        {
                            out.insert(node.clone(), (id.to_string(), e.ts_ms - t0));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn run(args: SlurmDagBenchArgs) -> Result<ExitCode> {
    ensure!(
        Command::new("sinfo")
            .arg("-h")
            .output()
            .is_ok_and(|o| o.status.success()),
        "no Slurm cluster answers `sinfo` (scripts/ci/slurm.sh starts a loopback one)"
    );
    let (_tmp, dir) = recipe_folder(args.dir.as_deref(), args.nodes, args.sources, args.rows)?;
    let exe = std::env::current_exe()?;
    let poll = args.poll_ms.to_string();
    let run = || {
        timed(
            Command::new(&exe)
                .args(["--quiet", "--store", "store", "run", "bench.toml"])
                .args(["--executor", "slurm", "--slurm-poll-ms", &poll])
                .current_dir(&dir),
        )
    };
    println!(
        "slurm dag benchmark: {} nodes ({} imports of {} rows, {} filters) as Slurm jobs, controller polling every {} ms, folder {}",
        args.nodes,
        args.sources,
        args.rows,
        args.nodes - args.sources,
        args.poll_ms,
        dir.display()
    );

    // Slurm forgets finished jobs after MinJobAge: collect their times as they finish.
    let times = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (times, stop) = (times.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                poll_squeue(&times);
                std::thread::sleep(Duration::from_secs(2));
            }
        })
    };
    let cold = run();
    stop.store(true, Ordering::Relaxed);
    poller.join().expect("the squeue poller does not panic");
    poll_squeue(&times);
    let (cold, _) = cold?;
    let (noop, _) = run()?;

    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("store/runs"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    let cold_run = runs.first().context("the cold run left no run folder")?;
    let walls = controller_walls(&cold_run.join("events.jsonl"))?;
    let times = times.lock().unwrap();
    let (mut wall, mut slurm, mut queued, mut over) = (vec![], vec![], vec![], vec![]);
    for (id, ms) in walls.values() {
        if let Some(t) = times.get(id) {
            let w = *ms as f64 / 1000.0;
            let s = (t.end - t.submit) as f64;
            wall.push(w);
            slurm.push(s);
            queued.push((t.start - t.submit) as f64);
            over.push(w - s);
        }
    }
    ensure!(
        !wall.is_empty(),
        "no job of the cold run had both the controller's and Slurm's times"
    );
    println!(
        "  cold run:   {cold:>7.2} s  ({} jobs; {} with Slurm's times)",
        walls.len(),
        wall.len()
    );
    println!("  no-op run:  {noop:>7.2} s  (every node fresh, no job submitted)");
    println!(
        "  per node, controller (submit → result seen in the store): mean {:.2} s, median {:.2} s",
        mean(&wall),
        median(&mut wall.clone())
    );
    println!(
        "  per job, Slurm (submit → end, 1-s resolution):            mean {:.2} s, median {:.2} s (submit → start: mean {:.2} s)",
        mean(&slurm),
        median(&mut slurm.clone()),
        mean(&queued)
    );
    println!(
        "  controller overhead per node beyond Slurm's latency:      mean {:.2} s, median {:.2} s",
        mean(&over),
        median(&mut over)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_times_are_seconds_apart() {
        let a = slurm_seconds("2026-12-07T23:59:58").unwrap();
        let b = slurm_seconds("2026-12-08T00:00:03").unwrap();
        assert_eq!(b - a, 5);
        assert_eq!(slurm_seconds("1970-01-01T00:00:00"), Some(0));
        assert_eq!(slurm_seconds("Unknown"), None);
    }
}
