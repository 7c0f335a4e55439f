//! reasongen's side of the LLM benchmark: what a user runs, `reasongen run` on a recipe
//! whose `rationale.plan` node sends one request per prompt to the server, in a child
//! process measured on its own. The prompts' source table is written first, by another
//! `reasongen run`, so that the measured run is the stage: reading the table, templates
//! and request keys, the scheduler, HTTP, validation, memo commits, the ledger and the
//! output tables. The sending phase alone (from the node's start to the stage's
//! "requests done" line, from the run's events) is timed too.

use super::measure::{self, Measured};
use anyhow::{Context, Result, bail, ensure};
use datasets::table::TableReader;
use pipeline::Store;
use std::path::Path;
use std::process::Command;

const RECIPE: &str = "bench-llm";

/// The recipe: the prompts, and `rationale.plan` against `url` at `concurrency`.
fn recipe(url: &str, concurrency: usize) -> String {
    format!(
        r#"[recipe]
name = "{RECIPE}"

[nodes.prompts]
kind = "source.table"
config = {{ path = "prompts.jsonl", schema = "rl_prompt" }}

[nodes.plan]
kind = "rationale.plan"
inputs = {{ prompts = "prompts" }}
config = {{ endpoint = {{ base_url = "{url}", model = "mock-model" }}, limits = {{ concurrency = {concurrency} }} }}
"#
    )
}

fn reasongen(dir: &Path, args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(std::env::current_exe().context("locating this executable")?);
    cmd.current_dir(dir)
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--quiet")
        .args(args)
        .env_remove("REASONGEN_STORE");
    Ok(cmd)
}

/// Run `rationale.plan` over `prompts` (an `rl_prompt` JSONL file) in a fresh project
/// folder `dir`; the cost of the measured run.
pub fn run(dir: &Path, prompts: &Path, url: &str, concurrency: usize) -> Result<Measured> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::copy(prompts, dir.join("prompts.jsonl"))?;
    std::fs::write(dir.join("recipe.toml"), recipe(url, concurrency))?;
    let source = reasongen(dir, &["run", "recipe.toml", "--target", "prompts"])?.output()?;
    ensure!(
        source.status.success(),
        "writing the prompts table: {}",
        String::from_utf8_lossy(&source.stderr)
    );
    let m = measure::run(&mut reasongen(dir, &["run", "recipe.toml"])?)?;
    if !m.success {
        bail!("reasongen run failed:\n{}{}", m.stdout, m.stderr);
    }
    Ok(m)
}

/// Seconds from the `plan` node's start to its "requests done" line (the sending
/// phase, before the tables are written), from the events of the last run in `dir`.
pub fn sending_secs(dir: &Path) -> Result<f64> {
    let runs = dir.join("store").join("runs");
    let mut names: Vec<_> = std::fs::read_dir(&runs)
        .with_context(|| runs.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let events = names
        .last()
        .context("no run recorded")?
        .join("events.jsonl");
    let text = std::fs::read_to_string(&events).with_context(|| events.display().to_string())?;
    let (mut start, mut done) = (None, None);
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: not JSON: {line}", events.display()))?;
        let ts = e["ts_ms"].as_u64();
        match e["event"].as_str() {
            Some("node_started") if e["node"] == "plan" => start = ts,
            Some("message")
                if e["node"] == "plan"
                    && e["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("requests done")) =>
            {
                done = ts
            }
            _ => {}
        }
    }
    match (start, done) {
        (Some(s), Some(d)) => Ok((d.saturating_sub(s)) as f64 / 1000.0),
        _ => bail!(
            "{}: no node_started and \"requests done\" events for plan",
            events.display()
        ),
    }
}

/// Rows in the `plan` node's table of the project in `dir`.
pub fn rows(dir: &Path) -> Result<u64> {
    let store = Store::open(&dir.join("store"))?;
    let r = store
        .get_ref(RECIPE, "plan")?
        .context("the plan node has no table")?;
    Ok(TableReader::open(&store.object_dir(&r.digest))?.row_count()?)
}
