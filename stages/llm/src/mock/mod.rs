//! A loopback OpenAI-compatible server for tests, benchmarks and trying recipes
//! without a model: `POST /v1/chat/completions` and the Batch API, hand-written over
//! a tokio `TcpListener` so that every fault can be scripted ([`Script`]): latency,
//! 429 with and without `Retry-After` (seconds or HTTP date), any status and body,
//! requests that never get an answer, dropped connections, invalid JSON,
//! schema-violating JSON, `finish_reason=length`, null content, an enforced and
//! announced request rate, a required key, and batches that expire or fail.
//!
//! Answers depend on the request alone, so a rerun's table equals an uninterrupted
//! run's. The server counts what it receives ([`Counts`]). It runs on a thread and
//! runtime of its own, so that blocking tests, async tests and other processes (over
//! its URL) can all use it; dropping the [`MockServer`] stops it.

mod batch;
mod chat;
mod http;
mod script;

pub use script::{Answerer, BatchScript, Fault, RetryAfter, Rule, Script};

use http::{Request, Response};
use pipeline::Digest;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What the server has received so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Chat-completion requests (every attempt, faults included).
    pub chat: u64,
    /// Of those, bodies that had arrived before (the same request sent again).
    pub repeated: u64,
    /// Chat requests received and not yet answered.
    pub in_flight: u64,
    /// Of those, answered 429 (scripted or over the rate).
    pub rate_limited: u64,
    pub files: u64,
    pub batches: u64,
    pub polls: u64,
    /// Lines run by batches.
    pub batch_lines: u64,
}

#[derive(Default)]
struct Counters {
    chat: AtomicU64,
    repeated: AtomicU64,
    in_flight: AtomicU64,
    rate_limited: AtomicU64,
    files: AtomicU64,
    batches: AtomicU64,
    polls: AtomicU64,
    batch_lines: AtomicU64,
}

/// The server's state, shared by its connections.
struct State {
    script: Script,
    started: Instant,
    counters: Counters,
    /// Arrivals of each distinct chat body.
    seen: Mutex<HashMap<Digest, u32>>,
    /// The current one-second window of the rate limit: (second, requests).
    window: Mutex<(u64, u64)>,
    files: Mutex<HashMap<String, Vec<u8>>>,
    batches: Mutex<HashMap<String, serde_json::Value>>,
    expired: Mutex<HashSet<Digest>>,
    /// The last `Authorization` or `api-key` header received.
    auth: Mutex<Option<String>>,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn lock_files(&self) -> MutexGuard<'_, HashMap<String, Vec<u8>>> {
        lock(&self.files)
    }
    fn lock_batches(&self) -> MutexGuard<'_, HashMap<String, serde_json::Value>> {
        lock(&self.batches)
    }
    fn lock_expired(&self) -> MutexGuard<'_, HashSet<Digest>> {
        lock(&self.expired)
    }
}

/// A running mock server.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    /// Start a server on a free loopback port.
    pub fn start(script: Script) -> std::io::Result<MockServer> {
        Self::start_on("127.0.0.1:0", script)
    }

    /// Start a server on `addr` (`127.0.0.1:8390`; port 0: a free one).
    pub fn start_on(addr: &str, script: Script) -> std::io::Result<MockServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            script,
            started: Instant::now(),
            counters: Counters::default(),
            seen: Mutex::default(),
            window: Mutex::default(),
            files: Mutex::default(),
            batches: Mutex::default(),
            expired: Mutex::default(),
            auth: Mutex::default(),
            next_id: AtomicU64::new(1),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mock-llm")
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(_) => return,
                };
                tokio::select! {
                    _ = accept(listener, shared) => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_background();
        });
        Ok(MockServer {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The API root, as `endpoint.base_url` takes it: `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn counts(&self) -> Counts {
        let c = &self.state.counters;
        Counts {
            chat: c.chat.load(Relaxed),
            repeated: c.repeated.load(Relaxed),
            in_flight: c.in_flight.load(Relaxed),
            rate_limited: c.rate_limited.load(Relaxed),
            files: c.files.load(Relaxed),
            batches: c.batches.load(Relaxed),
            polls: c.polls.load(Relaxed),
            batch_lines: c.batch_lines.load(Relaxed),
        }
    }

    /// The last credential header received (to check that a key was sent).
    pub fn last_auth(&self) -> Option<String> {
        lock(&self.state.auth).clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, state.clone()));
    }
}

async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let mut buf = Vec::with_capacity(16 << 10);
    while let Ok(Some(req)) = http::read_request(&mut stream, &mut buf).await {
        let response = match route(&state, &req).await {
            chat::Decision::Respond(r) => r,
            chat::Decision::Drop => return,
            chat::Decision::Hang => {
                http::until_closed(&mut stream).await;
                return;
            }
        };
        if http::write_response(&mut stream, &response).await.is_err() {
            return;
        }
    }
}

async fn route(state: &Arc<State>, req: &Request) -> chat::Decision {
    use chat::Decision::Respond;
    let path = req.path.split('?').next().unwrap_or_default();
    if let Some(auth) = req
        .header("authorization")
        .or_else(|| req.header("api-key"))
    {
        *lock(&state.auth) = Some(auth.to_string());
    }
    if let Some(denied) = check_key(state, req) {
        return Respond(denied);
    }
    match (req.method.as_str(), path) {
        ("POST", "/v1/chat/completions") => {
            state.counters.chat.fetch_add(1, Relaxed);
            state.counters.in_flight.fetch_add(1, Relaxed);
            let _answered = InFlight(&state.counters.in_flight);
            if let Some(limited) = over_rate(state) {
                return Respond(limited);
            }
            let decision = chat::decide(state, &req.body);
            let delay = state.script.latency + jitter(&state.script, &req.body);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match decision {
                Respond(r) => Respond(with_rate_headers(state, r)),
                other => other,
            }
        }
        ("POST", "/v1/files") => Respond(batch::upload(state, req)),
        ("POST", "/v1/batches") => Respond(batch::create(state, req)),
        ("GET", p) if p.starts_with("/v1/batches/") => {
            Respond(batch::get(state, &p["/v1/batches/".len()..]))
        }
        ("GET", p) if p.starts_with("/v1/files/") && p.ends_with("/content") => Respond(
            batch::content(state, &p["/v1/files/".len()..p.len() - "/content".len()]),
        ),
        _ => Respond(Response::json(
            404,
            r#"{"error":{"message":"mock: no such route","type":"invalid_request_error","code":null}}"#,
        )),
    }
}

/// A delay in `[0, script.jitter)` drawn from the request body.
fn jitter(script: &Script, body: &[u8]) -> std::time::Duration {
    if script.jitter.is_zero() {
        return std::time::Duration::ZERO;
    }
    let mut rng = datasets::rng::Rng::new(Digest::of_bytes(body).seed());
    script.jitter.mul_f64(rng.unit())
}

/// Counts a chat request as answered when dropped (whatever path it leaves by).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A 401 quoting the key received, when the script requires another.
fn check_key(state: &State, req: &Request) -> Option<Response> {
    let want = state.script.api_key.as_ref()?;
    let got = req
        .header("authorization")
        .map(|a| a.trim_start_matches("Bearer ").to_string())
        .or_else(|| req.header("api-key").map(str::to_string))
        .unwrap_or_default();
    (got != *want).then(|| {
        Response::json(
            401,
            serde_json::json!({"error": {"message": format!("Incorrect API key provided: {got}."), "type": "invalid_request_error", "code": "invalid_api_key"}}).to_string(),
        )
    })
}

fn now_secs() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_millis())
}

/// A 429 when this second's share of the rate limit is used up.
fn over_rate(state: &State) -> Option<Response> {
    let rpm = state.script.rpm?;
    let per_second = (rpm / 60).max(1);
    let (second, _) = now_secs();
    let mut w = lock(&state.window);
    if w.0 != second {
        *w = (second, 0);
    }
    w.1 += 1;
    if w.1 <= per_second {
        return None;
    }
    drop(w);
    state.counters.rate_limited.fetch_add(1, Relaxed);
    Some(with_rate_headers(
        state,
        chat::rate_limited(Some(RetryAfter::Seconds(1))),
    ))
}

/// The `x-ratelimit-*` headers of the enforced rate (remaining scaled to a minute).
fn with_rate_headers(state: &State, r: Response) -> Response {
    let Some(rpm) = state.script.rpm else {
        return r;
    };
    let per_second = (rpm / 60).max(1);
    let (second, millis) = now_secs();
    let used = {
        let w = lock(&state.window);
        if w.0 == second { w.1 } else { 0 }
    };
    r.with_header("x-ratelimit-limit-requests", rpm.to_string())
        .with_header(
            "x-ratelimit-remaining-requests",
            (per_second.saturating_sub(used) * 60).to_string(),
        )
        .with_header("x-ratelimit-reset-requests", format!("{}ms", 1000 - millis))
}
