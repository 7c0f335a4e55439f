//! External programs run by a node: found on a path or `PATH`, started with a cleared
//! environment (only `PATH`, the names passed through and the variables set), their
//! streams kept in the run's log folder after redaction (a secret a program prints is
//! never kept), a timeout, and on failure an error holding the last lines of standard
//! error. The `command` stage and the official benchmark evaluators both run this way.

use crate::context::StageContext;
use crate::stage::{ResultExt, StageError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The program file `program` names: a path (relative to `dir`) or a `PATH` lookup.
pub fn resolve_program(program: &str, dir: &Path) -> Result<PathBuf, StageError> {
    if program.contains('/') {
        let p = crate::context::resolve_against(dir, program);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(StageError::msg(format!(
                "program `{}` not found",
                p.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| StageError::msg(format!("program `{program}` not found on PATH")))
}

/// One run of a program.
pub struct Invocation<'a> {
    /// What messages call it (`sh`, `evaluate_images.py`).
    pub name: &'a str,
    pub program: &'a Path,
    pub args: &'a [String],
    /// The working folder.
    pub dir: &'a Path,
    /// Variables set for the program.
    pub env: &'a BTreeMap<String, String>,
    /// Variables passed through from reasongen's own environment.
    pub pass_env: &'a [String],
    /// Seconds before the program is killed; 0 for no limit.
    pub timeout_secs: u64,
    /// Names the log files (`<node>.<label>.stdout`, or `<node>.stdout` when empty).
    pub label: &'a str,
}

/// Where a finished program's (redacted) streams were kept.
pub struct Logs {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Run `inv` to its end; an error when it fails or times out, naming its log.
pub async fn run(ctx: &StageContext, inv: &Invocation<'_>) -> Result<Logs, StageError> {
    let name = inv.name;
    let stem = if inv.label.is_empty() {
        ctx.node.clone()
    } else {
        format!("{}.{}", ctx.node, inv.label)
    };
    let raw_stdout = ctx.scratch_dir.join(format!("{stem}.stdout"));
    let raw_stderr = ctx.scratch_dir.join(format!("{stem}.stderr"));
    let stdout = std::fs::File::create(&raw_stdout).context(raw_stdout.display())?;
    let stderr = std::fs::File::create(&raw_stderr).context(raw_stderr.display())?;
    let mut cmd = tokio::process::Command::new(inv.program);
    cmd.args(inv.args)
        .current_dir(inv.dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for name in inv.pass_env {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.envs(inv.env);
    let mut child = cmd.spawn().context(format!("starting {name}"))?;
    let status = if inv.timeout_secs > 0 {
        match tokio::time::timeout(Duration::from_secs(inv.timeout_secs), child.wait()).await {
            Ok(s) => Some(s.context("waiting for the program")?),
            Err(_) => {
                let _ = child.kill().await;
                None
            }
        }
    } else {
        Some(child.wait().await.context("waiting for the program")?)
    };
    let logs = ctx.log_dir();
    std::fs::create_dir_all(&logs).context(logs.display())?;
    let kept = Logs {
        stdout: logs.join(format!("{stem}.stdout")),
        stderr: logs.join(format!("{stem}.stderr")),
    };
    for (from, to) in [(&raw_stdout, &kept.stdout), (&raw_stderr, &kept.stderr)] {
        let text = std::fs::read(from).context(from.display())?;
        let text = ctx.redact(&String::from_utf8_lossy(&text));
        std::fs::write(to, text).context(to.display())?;
    }
    let Some(status) = status else {
        return Err(StageError::msg(format!(
            "{name} killed after {} s (timeout_secs); stderr: {}",
            inv.timeout_secs,
            kept.stderr.display()
        )));
    };
    if !status.success() {
        return Err(StageError::msg(format!(
            "{name} exited with {status}; last lines of stderr ({}):\n{}",
            kept.stderr.display(),
            tail(&kept.stderr, 10)
        )));
    }
    Ok(kept)
}
