//! `reasongen run --executor slurm` on a loopback Slurm cluster (`scripts/ci/slurm.sh`
//! starts one and sets SLURM_CONF): the shapes data path and a short SFT give the local
//! run's artifacts (the SFT's model, tokenizer and evaluation; its metrics hold
//! timings); a job killed mid-node is resubmitted and nothing half-written is
//! published; a node whose jobs fail shows their log in the run's output; Ctrl-C
//! cancels the run's jobs. On an S3 store (moto on loopback), with a cache folder of
//! the controller's and another of the jobs', the same run gives the local run's
//! artifacts. Without a cluster the tests are skipped with a reason,
//! unless `REASONGEN_REQUIRE_SLURM` is set (`.ci/run`).

mod common;
#[path = "../pipeline/tests/s3/moto.rs"]
mod moto;

use common::{Project, repo};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a Slurm cluster answers; a missing one fails when it is required.
/// The tests share one cluster and find their jobs by name (`reasongen-<node>`), so
/// they run one at a time: the guard, while held, is the cluster.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn slurm() -> Option<std::sync::MutexGuard<'static, ()>> {
    let cluster = CLUSTER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up {
        assert!(
            std::env::var("REASONGEN_REQUIRE_SLURM").is_err(),
            "no Slurm cluster answers `sinfo` but REASONGEN_REQUIRE_SLURM is set"
        );
        eprintln!("skipped: no Slurm cluster answers `sinfo` (scripts/ci/slurm.sh starts one)");
        return None;
    }
    Some(cluster)
}

/// The shapes recipe's data path and a two-step SFT, small.
const SMALL: &[&str] = &[
    "scenes.count=120",
    "vq_corpus.count=100",
    "vq.images=80",
    "vq.holdout=20",
    "eval_prompts.per_task=12",
    "sft_rationale.steps=2",
    "sft_rationale.eval.max_prompts=3",
    "sft_rationale.eval.generate.max_rationale_tokens=8",
];

const NODES: &[&str] = &[
    "scenes",
    "captions",
    "rationales",
    "pairs",
    "vq_corpus",
    "vq",
    "samples",
    "release",
    "eval_prompts",
    "init",
];

/// The SFT's files that are a function of its inputs (its metrics also hold timings).
const SFT_FILES: &[&str] = &[
    "model.safetensors",
    "tokenizer.json",
    "config.json",
    "eval.jsonl",
];

fn shapes_args(extra: &[&str], targets: &[&str]) -> Vec<String> {
    let mut a = vec![
        "run".to_string(),
        repo("recipes/shapes.toml").display().to_string(),
    ];
    for s in SMALL {
        a.extend(["--set".to_string(), s.to_string()]);
    }
    for t in targets {
        a.extend(["--target".to_string(), t.to_string()]);
    }
    // Two threads a node: what the loopback cluster's node has, and what a local run
    // grants on two cores.
    a.extend(["--jobs", "2"].map(String::from));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn run_args(p: &Project, args: &[String]) -> common::Run {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    p.run(&refs)
}

fn artifact_file(p: &Project, node: &str, file: &str) -> Vec<u8> {
    let store = pipeline::Store::open(&p.store()).unwrap();
    let r = store.get_ref("shapes", node).unwrap().expect("ref");
    std::fs::read(store.object_dir(&r.digest).join(file)).unwrap()
}

fn digest(p: &Project, node: &str) -> Option<pipeline::Digest> {
    let store = pipeline::Store::open(&p.store()).unwrap();
    store.get_ref("shapes", node).unwrap().map(|r| r.digest)
}

fn verify_clean(p: &Project) {
    let verify = p.run(&["verify"]).ok();
    assert!(verify.stdout.contains(": 0 problems"), "{}", verify.stdout);
}

/// The run folder of the store's only run.
fn only_run(p: &Project) -> std::path::PathBuf {
    let runs: Vec<_> = std::fs::read_dir(p.store().join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn slurm_runs_give_the_local_runs_artifacts() {
    let Some(_cluster) = slurm() else {
        return;
    };
    let local = Project::new();
    run_args(&local, &shapes_args(&[], &["release", "sft_rationale"])).ok();
    let remote = Project::new();
    let out = run_args(
        &remote,
        &shapes_args(
            &["--executor", "slurm", "--slurm-poll-ms", "200"],
            &["release", "sft_rationale"],
        ),
    )
    .ok();
    for node in NODES {
        let (l, r) = (digest(&local, node), digest(&remote, node));
        assert!(l.is_some(), "local run has no `{node}`");
        assert_eq!(l, r, "`{node}` differs between the local and the Slurm run");
    }
    for file in SFT_FILES {
        assert!(
            artifact_file(&local, "sft_rationale", file)
                == artifact_file(&remote, "sft_rationale", file),
            "the SFT's {file} differs between the local and the Slurm run"
        );
    }
    // Every node ran as a job, and the jobs' events are in the run's log.
    let run = only_run(&remote);
    let events = pipeline::events::read_events(&run.join("events.jsonl")).unwrap();
    for node in NODES.iter().chain(&["sft_rationale"]) {
        let finished = events.iter().any(|e| {
            matches!(&e.event, pipeline::events::Event::NodeFinished { node: n, .. } if n == node)
        });
        assert!(
            finished,
            "no node_finished for `{node}` in the run's events"
        );
        assert!(
            run.join("nodes").join(format!("{node}.json")).exists(),
            "no description of `{node}`"
        );
    }
    assert!(out.text().contains("succeeded"), "{}", out.text());
    verify_clean(&remote);
    // A second run is entirely fresh and submits nothing.
    let again = run_args(
        &remote,
        &shapes_args(&["--executor", "slurm"], &["release", "sft_rationale"]),
    )
    .ok();
    assert!(again.text().contains(" 0 ran, "), "{}", again.text());
}

/// The id of the running job named for `node`, once there is one.
fn running_job(node: &str, timeout: Duration) -> Option<String> {
    let name = format!("reasongen-{node}");
    let start = Instant::now();
    while start.elapsed() < timeout {
        let out = Command::new("squeue")
            .args(["-h", "-t", "running", "-o", "%i|%j"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(id) = text.lines().find_map(|l| {
            l.split_once('|')
                .filter(|(_, j)| *j == name)
                .map(|(i, _)| i.to_string())
        }) {
            return Some(id);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Whether `node`'s events file says it started, in the store's only run.
fn node_started(store: &Path, node: &str) -> bool {
    let Ok(runs) = std::fs::read_dir(store.join("runs")) else {
        return false;
    };
    runs.flatten().any(|r| {
        std::fs::read_to_string(r.path().join("nodes").join(format!("{node}.events.jsonl")))
            .is_ok_and(|t| t.contains("\"node_started\""))
    })
}

/// Starts the shapes recipe up to an SFT of `steps` steps under the Slurm executor and
/// waits for the SFT's job to run: the controller process and the job's id.
fn start_sft_job(p: &Project, steps: u32) -> (std::process::Child, String) {
    let steps = format!("sft_rationale.steps={steps}");
    let args = shapes_args(
        &[
            "--executor",
            "slurm",
            "--slurm-poll-ms",
            "200",
            "--set",
            &steps,
        ],
        &["sft_rationale"],
    );
    let child = p
        .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let job =
        running_job("sft_rationale", Duration::from_secs(600)).expect("the SFT job never ran");
    (child, job)
}

#[test]
fn a_job_killed_mid_node_is_resubmitted_and_nothing_half_written_is_published() {
    let Some(_cluster) = slurm() else {
        return;
    };
    let p = Project::new();
    // Enough steps that the SFT node is still running when its job is cancelled.
    let (child, job) = start_sft_job(&p, 200);
    let start = Instant::now();
    while !node_started(&p.store(), "sft_rationale") {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the SFT node never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let cancelled = Command::new("scancel").arg(&job).status().unwrap();
    assert!(cancelled.success());
    let out = common::Run::from(child.wait_with_output().unwrap()).ok();
    let text = out.text();
    assert!(
        text.contains(&format!("Slurm job {job} ended CANCELLED")) && text.contains("resubmitting"),
        "{text}"
    );
    assert!(digest(&p, "sft_rationale").is_some());
    verify_clean(&p);
}

#[test]
fn a_failed_node_shows_its_jobs_log_tail_and_publishes_nothing() {
    let Some(_cluster) = slurm() else {
        return;
    };
    let p = Project::new();
    let args = shapes_args(
        &[
            "--executor",
            "slurm",
            "--slurm-poll-ms",
            "200",
            "--slurm-retries",
            "1",
        ],
        &["scenes"],
    );
    // Jobs inherit the controller's environment: each one aborts after the stage runs,
    // before anything is published.
    let out = common::Run::from(
        p.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .env("REASONGEN_FAULT", "node.after_run:scenes")
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, Some(1), "{}", out.text());
    let text = out.text();
    assert!(text.contains("failed node `scenes`"), "{text}");
    assert!(text.contains("after 2 attempt(s)"), "{text}");
    assert!(
        text.contains("fault injected at node.after_run (scenes): aborting"),
        "the job's log tail is not in the output:\n{text}"
    );
    assert_eq!(digest(&p, "scenes"), None);
    verify_clean(&p);
}

/// The state Slurm gives job `id` (`squeue -t all`).
fn job_state(id: &str) -> String {
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-j", id, "-o", "%T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn ctrl_c_cancels_the_runs_jobs() {
    let Some(_cluster) = slurm() else {
        return;
    };
    let p = Project::new();
    let (child, job) = start_sft_job(&p, 20000);
    // SAFETY: sending SIGINT to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = common::Run::from(child.wait_with_output().unwrap());
    assert_eq!(out.code, Some(130), "{}", out.text());
    assert!(out.text().contains("cancelled"), "{}", out.text());
    let start = Instant::now();
    loop {
        let state = job_state(&job);
        if state == "CANCELLED" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job {job} is {state} after the run was interrupted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(digest(&p, "sft_rationale"), None);
    verify_clean(&p);
}

/// The counters of `node`'s last `node_counters` or `node_finished` event in `path`.
fn last_counters(path: &Path, node: &str) -> std::collections::BTreeMap<String, u64> {
    use pipeline::events::Event;
    let events = pipeline::events::read_events(path).unwrap();
    events
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            Event::NodeCounters { node: n, counters }
            | Event::NodeFinished {
                node: n, counters, ..
            } if n == node => Some(counters.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no counters of `{node}` in {}", path.display()))
}

/// The rows an LLM node's process resolved: answered, found in the memo, the same as
/// an earlier row, or failed.
fn seen_rows(counters: &std::collections::BTreeMap<String, u64>) -> u64 {
    [
        "llm_answered",
        "llm_memo_hits",
        "llm_duplicate_rows",
        "llm_failed_rows",
    ]
    .iter()
    .map(|n| counters.get(*n).copied().unwrap_or(0))
    .sum()
}

/// The rows `node` published, from its `node_finished` event in `path`.
fn finished_rows(path: &Path, node: &str) -> u64 {
    use pipeline::events::Event;
    let events = pipeline::events::read_events(path).unwrap();
    events
        .iter()
        .find_map(|e| match &e.event {
            Event::NodeFinished { node: n, rows, .. } if n == node => *rows,
            _ => None,
        })
        .unwrap_or_else(|| panic!("`{node}` published no rows in {}", path.display()))
}

#[test]
fn a_shardable_node_runs_as_an_array_of_shards_then_publishes_the_local_result() {
    let Some(_cluster) = slurm() else {
        return;
    };
    // The local executor ignores the flag: the node runs whole, in one process.
    let local = Project::new();
    run_args(
        &local,
        &shapes_args(&["--slurm-shards", "3"], &["captions"]),
    )
    .ok();
    let local_run = only_run(&local);
    let rows = finished_rows(&local_run.join("events.jsonl"), "captions");
    let whole = last_counters(&local_run.join("events.jsonl"), "captions");
    assert_eq!(seen_rows(&whole), rows, "{whole:?}");
    let shard_files = std::fs::read_dir(local_run.join("nodes"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("shard"))
        .count();
    assert_eq!(shard_files, 0);

    let remote = Project::new();
    let out = run_args(
        &remote,
        &shapes_args(
            &[
                "--executor",
                "slurm",
                "--slurm-poll-ms",
                "200",
                "--slurm-shards",
                "3",
            ],
            &["captions"],
        ),
    )
    .ok();
    let text = out.text();
    assert!(text.contains("shard task(s) 0,1,2 of 3"), "{text}");
    assert!(text.contains("every shard's items are memoised"), "{text}");
    // One array, once: `scenes` is not shardable, and no shard task failed.
    assert_eq!(
        text.matches("submitted: shard task(s)").count(),
        1,
        "{text}"
    );
    assert_eq!(digest(&remote, "captions"), digest(&local, "captions"));
    assert!(digest(&local, "captions").is_some());

    // Each of the 3 array tasks answered a nonempty part of the rows; together they
    // saw every row once and answered no request twice.
    let run = only_run(&remote);
    let nodes = run.join("nodes");
    let (mut seen, mut answered) = (0, 0);
    for k in 0..3 {
        let name = format!("captions.shard-{k}-of-3");
        assert!(
            nodes.join(format!("{name}.done")).exists(),
            "shard {k} not done"
        );
        let c = last_counters(&nodes.join(format!("{name}.events.jsonl")), "captions");
        let shard_answered = c.get("llm_answered").copied().unwrap_or(0);
        assert!(shard_answered > 0, "shard {k} answered nothing: {c:?}");
        answered += shard_answered;
        seen += seen_rows(&c);
    }
    assert_eq!(seen, rows);
    let store = pipeline::Store::open(&remote.store()).unwrap();
    assert_eq!(answered, store.memo("llm.chat").unwrap().len().unwrap());
    // The node's own job (the merge) found every item memoised and sent nothing.
    let merge = last_counters(&run.join("events.jsonl"), "captions");
    assert_eq!(
        merge.get("llm_requests").copied().unwrap_or(0),
        0,
        "{merge:?}"
    );
    assert_eq!(
        merge.get("llm_answered").copied().unwrap_or(0),
        0,
        "{merge:?}"
    );
    assert_eq!(finished_rows(&run.join("events.jsonl"), "captions"), rows);
    assert!(!nodes.join("scenes.shard-0-of-3.done").exists());
    verify_clean(&remote);
}

/// The shapes data path and the short SFT as Slurm jobs on an S3 store give the local
/// run's artifacts. The controller and the jobs each have their own cache folder
/// (`SBATCH_EXPORT` gives the jobs theirs), so the node descriptions, their events and
/// the artifacts can only pass through the bucket.
#[test]
fn slurm_jobs_on_an_s3_store_give_the_local_runs_artifacts() {
    let Some(_cluster) = slurm() else {
        return;
    };
    let Some(m) = moto::moto() else { return };
    let targets = ["release", "sft_rationale"];
    let local = Project::new();
    run_args(&local, &shapes_args(&[], &targets)).ok();
    let p = Project::new();
    let url = format!("s3://{}/team", m.bucket("slurm"));
    let args = shapes_args(&["--executor", "slurm", "--slurm-poll-ms", "200"], &targets);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (controller, jobs) = (p.path("cache-controller"), p.path("cache-jobs"));
    let out = common::Run::from(
        p.cmd_on(url.as_ref(), &args)
            .env("REASONGEN_CACHE", &controller)
            .env(
                "SBATCH_EXPORT",
                format!("ALL,REASONGEN_CACHE={}", jobs.display()),
            )
            .output()
            .unwrap(),
    )
    .ok();
    assert!(out.text().contains("succeeded"), "{}", out.text());

    let s3 = pipeline::Store::open_with(
        url.as_ref(),
        pipeline::store::StoreOptions {
            cache: Some(p.path("cache-test")),
            ..Default::default()
        },
    )
    .unwrap();
    let on_s3 = |node: &str| s3.get_ref("shapes", node).unwrap().map(|r| r.digest);
    for node in NODES {
        assert!(digest(&local, node).is_some(), "local run has no `{node}`");
        assert_eq!(
            on_s3(node),
            digest(&local, node),
            "`{node}` differs between the local run and the Slurm run on S3"
        );
    }
    let sft = on_s3("sft_rationale").expect("the SFT's ref");
    s3.manifest(&sft).unwrap();
    for file in SFT_FILES {
        assert!(
            artifact_file(&local, "sft_rationale", file)
                == std::fs::read(s3.object_dir(&sft).join(file)).unwrap(),
            "the SFT's {file} differs between the local run and the Slurm run on S3"
        );
    }

    // The jobs wrote their events in their own cache, and the controller merged them
    // from the bucket into the run's log in its cache.
    let runs: Vec<_> = std::fs::read_dir(controller.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let events =
        pipeline::events::read_events(&controller.join("runs").join(&runs[0]).join("events.jsonl"))
            .unwrap();
    for node in NODES.iter().chain(&["sft_rationale"]) {
        let finished = events.iter().any(|e| {
            matches!(&e.event, pipeline::events::Event::NodeFinished { node: n, .. } if n == node)
        });
        assert!(
            finished,
            "no node_finished for `{node}` in the run's events"
        );
        let job_events = jobs
            .join("runs")
            .join(&runs[0])
            .join("nodes")
            .join(format!("{node}.events.jsonl"));
        assert!(job_events.is_file(), "{} is missing", job_events.display());
    }
    let verify = common::Run::from(
        p.cmd_on(url.as_ref(), &["verify"])
            .env("REASONGEN_CACHE", &controller)
            .output()
            .unwrap(),
    )
    .ok();
    assert!(verify.stdout.contains(": 0 problems"), "{}", verify.text());
}

/// Every f32 tensor of a safetensors file, by name.
fn f32_tensors(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<f32>> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, t)| t.dtype() == safetensors::Dtype::F32)
        .map(|(name, t)| {
            let values = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect()
}

/// A data-parallel SFT node (`data_parallel = { backend = "mpi", ranks = 2 }`) is one
/// job of two tasks that `srun` starts, Open MPI meeting through Slurm's PMIx
/// (`SLURM_MPI_TYPE=pmix`, which `srun` reads from the job's environment); rank 0
/// publishes, and the model is a one-rank run's.
#[test]
fn a_two_rank_sft_runs_as_two_slurm_tasks_and_trains_the_one_rank_model() {
    let Some(_cluster) = slurm() else {
        return;
    };
    let sft = |ranks: &'static str| {
        [
            "sft_rationale.threads=1",
            "sft_rationale.grad_accum=2",
            "sft_rationale.data_parallel.backend=\"mpi\"",
            ranks,
        ]
        .iter()
        .flat_map(|s| ["--set", s])
        .collect::<Vec<_>>()
    };
    let one = Project::new();
    run_args(
        &one,
        &shapes_args(
            &sft("sft_rationale.data_parallel.ranks=1"),
            &["sft_rationale"],
        ),
    )
    .ok();
    let two = Project::new();
    let mut extra = sft("sft_rationale.data_parallel.ranks=2");
    extra.extend(["--executor", "slurm", "--slurm-poll-ms", "200"]);
    let args = shapes_args(&extra, &["sft_rationale"]);
    let out = common::Run::from(
        two.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .env("SLURM_MPI_TYPE", "pmix")
            .output()
            .unwrap(),
    )
    .ok();
    assert!(out.text().contains("succeeded"), "{}", out.text());
    let (a, b) = (
        f32_tensors(&artifact_file(&one, "sft_rationale", "model.safetensors")),
        f32_tensors(&artifact_file(&two, "sft_rationale", "model.safetensors")),
    );
    assert!(!a.is_empty());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let worst = a
        .iter()
        .flat_map(|(name, x)| x.iter().zip(&b[name]).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-4,
        "the two-rank model differs from the one-rank model by {worst}"
    );
    verify_clean(&two);
}
