//! The event files `write_run` leaves open in TensorBoard: its own Python reader
//! (`EventAccumulator`) finds every plotted series as scalars with their steps and
//! values. Runs where `$REASONGEN_PYTHON` (or `python3`) imports `tensorboard`; skipped
//! with a reason otherwise, unless `REASONGEN_REQUIRE_PYTHON` is set (`.ci/run`).

use serde::Serialize;
use std::path::Path;
use std::process::Command;
use train::core::report::{Plot, write_run};
use train::core::tensorboard::FILE;

#[derive(Serialize)]
struct Metrics {
    step: usize,
    loss: f64,
    reward: Option<f64>,
}

const PLOTS: &[Plot<Metrics>] = &[
    Plot {
        file: "loss.png",
        title: "Loss",
        y: "loss",
        series: &[("weighted loss", |m| Some(m.loss))],
    },
    Plot {
        file: "reward.png",
        title: "Reward",
        y: "reward",
        series: &[("mean", |m| m.reward), ("never", |_| None)],
    },
];

fn python() -> Option<String> {
    let py = std::env::var("REASONGEN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import tensorboard"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var("REASONGEN_REQUIRE_PYTHON").is_err(),
        "{py} lacks tensorboard but REASONGEN_REQUIRE_PYTHON is set"
    );
    eprintln!("skipped: {py} lacks tensorboard (see .ci/run)");
    None
}

fn run(dir: &Path) {
    let metrics: Vec<Metrics> = (1..=4)
        .map(|step| Metrics {
            step,
            loss: 1.0 / step as f64,
            reward: (step % 2 == 0).then_some(step as f64 * 0.25),
        })
        .collect();
    write_run(dir, &metrics, &[], |m| m.step, PLOTS).unwrap();
}

#[test]
fn the_event_file_is_the_same_bytes_every_time() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run(a.path());
    run(b.path());
    let read = |d: &Path| std::fs::read(d.join("tensorboard").join(FILE)).unwrap();
    assert_eq!(read(a.path()), read(b.path()));
}

#[test]
fn tensorboard_reads_every_series() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    run(tmp.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_tensorboard.py");
    let o = Command::new(&py)
        .arg(&script)
        .arg(tmp.path().join("tensorboard"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let expected = "\
loss/weighted loss 1 1 1
loss/weighted loss 2 0.5 2
loss/weighted loss 3 0.333333 3
loss/weighted loss 4 0.25 4
reward/mean 2 0.5 2
reward/mean 4 1 4
";
    assert_eq!(stdout, expected);
}
