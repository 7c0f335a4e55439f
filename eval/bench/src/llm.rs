//! The LLM request benchmark: N chat-completion requests at concurrency C through
//! `rationale.plan` (what `reasongen run` does), against the loopback mock server in a
//! process of its own ([`server`]), first answering at once, then after a fixed
//! latency; and beside it Bespoke Curator and distilabel ([`peers`]) sending the same
//! messages to the same server.
//!
//! Figures per client ([`measure`]): requests/s, CPU milliseconds per request (user +
//! system of the client process and its children), peak memory (summed proportional
//! set size of its process tree) and the largest resident set of one process; with
//! latency, the fraction of the concurrency/latency ceiling reached. reasongen is
//! measured over its whole `reasongen run` ([`ours`]), and its sending phase alone
//! (before the tables are written) is reported beside; the peers over their generation
//! only, imports and setup left out.

mod measure;
mod ours;
mod peers;
mod server;

use anyhow::{Result, bail};
use measure::Measured;
use peers::PEERS;
use server::Server;
use stages::rationale::task::Task;
use stages::rationale::tasks::plan::Plan;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct LlmBenchArgs {
    /// Requests per client and server setting.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Server latency of the second setting, milliseconds (0: only the instant server).
    #[arg(long, default_value_t = 200)]
    latency_ms: u64,
    /// The peers to run beside reasongen (`none` for none).
    #[arg(long, value_delimiter = ',', default_value = "curator,distilabel")]
    peers: Vec<String>,
    /// The Python with bespokelabs-curator and distilabel.
    #[arg(long, env = "REASONGEN_LLM_PEERS_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Work folder, kept (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Serve the mock server until standard input closes (used by the benchmark itself).
    #[arg(long = "serve-mock", hide = true)]
    serve_mock: bool,
}

/// One client's figures in one setting.
struct Row {
    client: String,
    requests: usize,
    wall: f64,
    cpu: f64,
    measured: Measured,
    /// The sending phase alone, seconds (reasongen only).
    sending: Option<f64>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.wall
    }
    fn cpu_ms(&self) -> f64 {
        self.cpu * 1000.0 / self.requests as f64
    }
}

/// `n` prompts as `rl_prompt` JSONL (for reasongen) and the same requests' messages as
/// JSONL of `system` and `user` (for the peers).
fn write_inputs(dir: &Path, n: usize) -> Result<(PathBuf, PathBuf)> {
    let colours = ["red", "green", "blue", "yellow", "purple", "orange"];
    let shapes = ["cubes", "spheres", "cones", "cylinders"];
    let (mut prompts, mut messages) = (String::new(), String::new());
    for i in 0..n {
        let prompt = format!(
            "a photo of {} {} {} next to {} {} {}",
            i % 9 + 1,
            colours[i % colours.len()],
            shapes[i % shapes.len()],
            i / 9 + 1,
            colours[(i / 7) % colours.len()],
            shapes[(i / 5) % shapes.len()],
        );
        let id = format!("p-{i:06}");
        let row = serde_json::json!({"id": id, "prompt": prompt, "family": "bench"});
        prompts.push_str(&format!("{row}\n"));
        let template = Plan::TEMPLATE;
        let request = serde_json::json!({
            "id": id,
            "system": template.system,
            "user": template.user.replace("{prompt}", &prompt),
        });
        messages.push_str(&format!("{request}\n"));
    }
    let (p, m) = (dir.join("prompts.jsonl"), dir.join("requests.jsonl"));
    std::fs::write(&p, prompts)?;
    std::fs::write(&m, messages)?;
    Ok((p, m))
}

fn print_table(title: &str, rows: &[Row], ceiling: Option<f64>) {
    println!();
    let extra = if ceiling.is_some() {
        " of concurrency/latency |"
    } else {
        ""
    };
    println!(
        "| {title} | wall | requests/s | CPU per request | peak memory (tree PSS) | max RSS |{extra}"
    );
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: |{}",
        if ceiling.is_some() { " ---: |" } else { "" }
    );
    for r in rows {
        let fraction = ceiling
            .map(|c| format!(" {:.0}% |", 100.0 * r.rate() / c))
            .unwrap_or_default();
        println!(
            "| {} | {:.2} s | {:.0} | {:.3} ms | {:.0} MiB | {:.0} MiB |{fraction}",
            r.client,
            r.wall,
            r.rate(),
            r.cpu_ms(),
            r.measured.peak_tree_mib,
            r.measured.max_rss_mib,
        );
    }
}

/// Every client against one server setting.
fn setting(
    args: &LlmBenchArgs,
    dir: &Path,
    latency: Duration,
    inputs: &(PathBuf, PathBuf),
    peers: &[&peers::Peer],
) -> Result<Vec<Row>> {
    let server = Server::start(latency)?;
    let n = args.requests;
    let tag = format!("{}ms", latency.as_millis());
    let ours_dir = dir.join(format!("reasongen-{tag}"));
    let m = ours::run(&ours_dir, &inputs.0, &server.url, args.concurrency)?;
    let rows = ours::rows(&ours_dir)?;
    let sending = ours::sending_secs(&ours_dir)?;
    if rows != n as u64 {
        bail!("reasongen wrote {rows} rows for {n} prompts");
    }
    let mut out = vec![Row {
        client: "reasongen `run` (rationale.plan)".into(),
        requests: n,
        wall: m.wall,
        cpu: m.cpu,
        measured: m,
        sending: Some(sending),
    }];
    for peer in peers {
        let r = peer.run(
            &args.python,
            &dir.join(format!("{}-{tag}", peer.name)),
            &inputs.1,
            &server.url,
            args.concurrency,
        )?;
        out.push(Row {
            client: format!("{} {}", peer.name, r.version),
            requests: n,
            wall: r.wall,
            cpu: r.cpu,
            measured: r.measured,
            sending: None,
        });
    }
    Ok(out)
}

/// reasongen against the first peer, and the goals.
fn compare(rows: &[Row], ceiling: Option<f64>) {
    let ours = &rows[0];
    if let Some(peer) = rows.get(1) {
        println!(
            "reasongen against {}: {:.1}× the requests/s, {:.2}× the CPU per request, {:.2}× the peak memory.",
            peer.client,
            ours.rate() / peer.rate(),
            ours.cpu_ms() / peer.cpu_ms(),
            ours.measured.peak_tree_mib / peer.measured.peak_tree_mib,
        );
    }
    let sending = ours.sending.map(|s| ours.requests as f64 / s);
    if let Some(rate) = sending {
        println!(
            "reasongen's sending phase alone (node start to its \"requests done\" line): {rate:.0} requests/s."
        );
    }
    match ceiling {
        Some(c) => println!(
            "Goal ≥ 90% of concurrency/latency: reasongen {:.0}% over the whole run, {:.0}% over the sending phase.",
            100.0 * ours.rate() / c,
            100.0 * sending.unwrap_or(0.0) / c
        ),
        None => println!(
            "Goal ≤ 0.3 ms CPU per request: reasongen {:.3} ms.",
            ours.cpu_ms()
        ),
    }
}

pub fn run(args: LlmBenchArgs) -> Result<ExitCode> {
    if args.serve_mock {
        server::serve(Duration::from_millis(args.latency_ms))?;
        return Ok(ExitCode::SUCCESS);
    }
    let temp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().into());
    std::fs::create_dir_all(&dir)?;
    let inputs = write_inputs(&dir, args.requests)?;
    let wanted: Vec<&str> = args
        .peers
        .iter()
        .map(String::as_str)
        .filter(|p| *p != "none")
        .collect();
    for w in &wanted {
        if !PEERS.iter().any(|p| p.name == *w) {
            bail!("--peers: unknown peer `{w}` (curator, distilabel or none)");
        }
    }
    let mut peers = Vec::new();
    for peer in PEERS.iter().filter(|p| wanted.contains(&p.name)) {
        match peer.missing(&args.python) {
            Some(why) => println!("{why}"),
            None => peers.push(peer),
        }
    }
    println!(
        "{} requests per client at concurrency {}; the mock server in its own process; {} CPUs",
        args.requests,
        args.concurrency,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let instant = setting(&args, &dir, Duration::ZERO, &inputs, &peers)?;
    print_table("instant server", &instant, None);
    compare(&instant, None);
    if args.latency_ms > 0 {
        let ceiling = args.concurrency as f64 * 1000.0 / args.latency_ms as f64;
        let slow = setting(
            &args,
            &dir,
            Duration::from_millis(args.latency_ms),
            &inputs,
            &peers,
        )?;
        print_table(
            &format!(
                "{} ms server latency (ceiling {ceiling:.0}/s)",
                args.latency_ms
            ),
            &slow,
            Some(ceiling),
        );
        compare(&slow, Some(ceiling));
    }
    Ok(ExitCode::SUCCESS)
}
