//! A moto S3 server on loopback for tests, and fresh buckets on it.
//!
//! With `REASONGEN_S3_ENDPOINT` set (CI's `scripts/ci/moto.sh` does), that server is
//! used. Otherwise the tests start their own `moto_server` on a free loopback port,
//! from the venv of `REASONGEN_PYTHON` (else from `PATH`), through a small Python
//! parent that stops it when this process's end of its stdin closes, so no server
//! outlives the tests. Without moto the tests say so and pass, unless
//! `REASONGEN_REQUIRE_S3=1`, which makes that a failure.
//!
//! The AWS_* variables object_store reads are set once, here, before any store opens.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Moto {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    _server: Option<Child>,
}

/// The server, or `None` (after saying why) when moto is not installed.
pub fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
    let found = MOTO.get_or_init(|| {
        let moto = match std::env::var("REASONGEN_S3_ENDPOINT") {
            Ok(endpoint) => Some(Moto {
                endpoint,
                _server: None,
            }),
            Err(_) => start(),
        }?;
        // SAFETY: every test of this binary calls `moto()` first, and the others wait
        // on this initialisation: no thread reads the environment meanwhile.
        unsafe {
            std::env::set_var("AWS_ENDPOINT", &moto.endpoint);
            std::env::set_var("AWS_ALLOW_HTTP", "true");
            std::env::set_var("AWS_REGION", "us-east-1");
            for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                if std::env::var_os(var).is_none() {
                    std::env::set_var(var, "testing");
                }
            }
        }
        Some(moto)
    });
    if found.is_none() {
        let why = "moto_server not found (install moto[server] into REASONGEN_PYTHON's venv, or set REASONGEN_S3_ENDPOINT)";
        assert!(
            std::env::var("REASONGEN_REQUIRE_S3").as_deref() != Ok("1"),
            "REASONGEN_REQUIRE_S3=1 but {why}"
        );
        eprintln!("skipping the S3 half of this test: {why}");
    }
    found.as_ref()
}

fn moto_server_path() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("REASONGEN_PYTHON") {
        let p = PathBuf::from(python).with_file_name("moto_server");
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    })
}

/// The parent process: runs moto_server, stops it when stdin closes.
const KEEPER: &str = "import subprocess, sys
p = subprocess.Popen(sys.argv[1:])
sys.stdin.read()
p.terminate()
p.wait()";

fn start() -> Option<Moto> {
    let server = moto_server_path()?;
    let python = server.with_file_name("python3");
    let python = if python.is_file() {
        python
    } else {
        "python3".into()
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new(python)
        .arg("-c")
        .arg(KEEPER)
        .arg(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if request(&endpoint, "GET", "/").is_some_and(|status| status == 200) {
            return Some(Moto {
                endpoint,
                _server: Some(child),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("moto_server at {endpoint} did not answer within a minute");
}

/// An unsigned request (moto does not check signatures); the HTTP status.
fn request(endpoint: &str, method: &str, path: &str) -> Option<u16> {
    let host = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    std::io::BufReader::new(&mut s).read_line(&mut line).ok()?;
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Moto {
    /// Create a bucket no other test uses; its name.
    pub fn bucket(&self, hint: &str) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("{hint}-{}-{n}-{nanos}", std::process::id());
        let status = request(&self.endpoint, "PUT", &format!("/{name}"));
        assert_eq!(
            status,
            Some(200),
            "creating bucket {name} on {}",
            self.endpoint
        );
        name
    }
}
