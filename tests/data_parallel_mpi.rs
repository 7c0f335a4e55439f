//! Data parallelism across processes: `reasongen bench dp` runs SFT steps of the tiny
//! preset at world 1 in-process, then as two processes under `mpirun` (Open MPI, each
//! rank loading libmpi at run time), without and with ZeRO-1; the two-process weights
//! must be the one-rank weights and ZeRO-1 must hold half the optimiser state per rank.
//! Skipped when mpirun is not installed, unless REASONGEN_REQUIRE_MPI=1 (CI).

use serde_json::Value;
use std::process::Command;

#[test]
fn two_processes_under_mpirun_take_the_one_rank_step() {
    let present = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var("REASONGEN_REQUIRE_MPI").as_deref() != Ok("1"),
            "REASONGEN_REQUIRE_MPI=1 but mpirun is not installed (scripts/ci/mpi.sh)"
        );
        eprintln!("skipped: mpirun is not installed (Debian: apt-get install openmpi-bin)");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_reasongen"))
        .args(["bench", "dp", "--ranks", "2", "--steps", "3", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mpirun"], true, "{v}");
    let parameters = v["parameters"].as_u64().unwrap();
    let run = |name: &str| {
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run"] == name)
            .unwrap_or_else(|| panic!("no run `{name}` in {v}"))
            .clone()
    };
    let whole = run("world 1")["state_bytes_per_rank"].as_u64().unwrap();
    assert_eq!(whole, parameters * 8, "f32 m and v");
    for name in ["threads", "threads, ZeRO-1", "mpirun", "mpirun, ZeRO-1"] {
        let r = run(name);
        let diff = r["max_weight_difference"].as_f64().unwrap();
        assert!(diff < 2e-5, "{name}: weights differ from world 1 by {diff}");
        assert!(r["tokens_per_s"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert_eq!(
        run("mpirun")["state_bytes_per_rank"].as_u64().unwrap(),
        whole
    );
    assert_eq!(
        run("mpirun, ZeRO-1")["state_bytes_per_rank"]
            .as_u64()
            .unwrap(),
        parameters.div_ceil(2) * 8,
        "rank 0 holds its half of the moments"
    );
}
