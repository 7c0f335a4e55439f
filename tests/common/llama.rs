//! llama.cpp's own HTTP server (the xllamacpp wheel) on loopback, with a tiny random
//! model and vision projector made at test time by `scripts/llama_server/`: shared by
//! the root crate's tests (`tests/common`) and `eval`'s (included by `#[path]`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python with xllamacpp, gguf and numpy: `$REASONGEN_PYTHON`, or `python3`.
/// `.ci/run` installs them and sets `REASONGEN_REQUIRE_PYTHON=1`, so there a missing
/// package fails the test.
pub fn python() -> Option<String> {
    let py = std::env::var("REASONGEN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import xllamacpp, gguf, numpy"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var("REASONGEN_REQUIRE_PYTHON").is_err(),
        "{py} lacks xllamacpp/gguf/numpy but REASONGEN_REQUIRE_PYTHON is set"
    );
    eprintln!("skipped: {py} lacks xllamacpp, gguf or numpy (see .ci/run)");
    None
}

/// `scripts/llama_server/`, found from the crate being tested (the root or a member).
fn scripts() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        let s = dir.join("scripts/llama_server");
        if s.is_dir() {
            return s;
        }
        assert!(dir.pop(), "no scripts/llama_server above the crate");
    }
}

/// llama.cpp's server on a free loopback port, serving the model as `tiny-random`;
/// killed when dropped.
pub struct LlamaServer {
    child: Child,
    /// `http://127.0.0.1:PORT` (the OpenAI-compatible API is under `/v1`).
    pub url: String,
    log: PathBuf,
}

impl LlamaServer {
    /// Make the tiny models in `dir` and serve them.
    pub fn start(py: &str, dir: &Path) -> LlamaServer {
        let scripts = scripts();
        let made = Command::new(py)
            .arg(scripts.join("make_tiny_models.py"))
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let log = dir.join("server.log");
        let mut child = Command::new(py)
            .arg(scripts.join("serve.py"))
            .arg(dir.join("tiny-llm.gguf"))
            .arg("0")
            .arg(dir.join("tiny-mmproj.gguf"))
            .env("OMP_NUM_THREADS", "1")
            .env("ALIAS", "tiny-random")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut server = LlamaServer {
            url: String::new(),
            child,
            log,
        };
        server.url = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the server did not start: {line:?}\n{}", server.log_text()))
            .trim()
            .to_string();
        server.wait_healthy();
        server
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll `GET /health` until it answers 200.
    fn wait_healthy(&self) {
        let addr = self.url.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = std::net::TcpStream::connect(&addr).is_ok_and(|mut s| {
                let request =
                    format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
                let mut reply = String::new();
                s.write_all(request.as_bytes()).is_ok()
                    && s.read_to_string(&mut reply).is_ok()
                    && reply.starts_with("HTTP/1.1 200")
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no /health at {addr}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
