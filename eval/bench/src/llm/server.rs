//! The loopback OpenAI-compatible server of the benchmark ([`llm::mock`]), in a
//! process of its own (this binary, started again with a hidden flag), so that the CPU
//! time and memory measured for each client are the client's alone.

use anyhow::{Context, Result, bail};
use llm::mock::{MockServer, Script};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The hidden flag that makes `reasongen bench llm` a server.
pub const SERVE_FLAG: &str = "--serve-mock";

/// Serve (answering after `latency`) until standard input closes; the first line
/// printed is the API root.
pub fn serve(latency: Duration) -> Result<()> {
    let server = MockServer::start(Script {
        latency,
        ..Script::default()
    })?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", server.url())?;
    out.flush()?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}

/// A server process; dropping it closes its input, which ends it.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    pub fn start(latency: Duration) -> Result<Server> {
        let exe = std::env::current_exe().context("locating this executable")?;
        let mut child = Command::new(exe)
            .args(["bench", "llm", SERVE_FLAG, "--latency-ms"])
            .arg(latency.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the mock server")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let url = line.trim().to_string();
        if !url.starts_with("http://") {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the mock server did not start (it printed {line:?})");
        }
        Ok(Server { child, url })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
