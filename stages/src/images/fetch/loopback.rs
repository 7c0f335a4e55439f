//! A scripted image server on loopback, for tests and the fetch benchmark: each path
//! answers as its [`Reply`] says (an image under any `Content-Type`, any status, a
//! redirect, a body trickled one byte at a time, a sequence of answers for retries),
//! after a fixed latency; unknown paths answer 404. It counts the requests of each
//! path, so that a test can tell what was fetched twice. Hand-written HTTP/1.1 over a
//! tokio `TcpListener` (keep-alive, and `Connection: close` honoured), on a thread and
//! runtime of its own; dropping the [`Loopback`] stops it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// How a path answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A status, headers and a body (with its `Content-Length`).
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Arc<[u8]>,
    },
    /// A 200 whose body comes one byte every `every` (a slow-loris server).
    Trickle { body: Arc<[u8]>, every: Duration },
    /// A 200 PNG without `Content-Length`: the body ends when the connection closes.
    Unsized { body: Arc<[u8]> },
    /// The first request gets the first reply, and so on; the last one repeats.
    Sequence(Vec<Reply>),
}

impl Reply {
    /// 200 with `body` as `content_type`.
    pub fn ok(content_type: &str, body: impl Into<Arc<[u8]>>) -> Reply {
        Reply::Answer {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// `code` with a short text body.
    pub fn status(code: u16) -> Reply {
        Reply::Answer {
            status: code,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: format!("status {code}\n").into_bytes().into(),
        }
    }

    /// 302 to `location`.
    pub fn redirect(location: &str) -> Reply {
        Reply::status(302).with_header("Location", location)
    }

    /// The same reply with one more header (for an [`Reply::Answer`]).
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Answer { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

struct State {
    routes: HashMap<String, Reply>,
    latency: Duration,
    counts: Mutex<HashMap<String, u64>>,
}

/// A running server.
pub struct Loopback {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    /// Serve `routes` (path → reply) on a free loopback port, each answer after
    /// `latency`.
    pub fn start(routes: HashMap<String, Reply>, latency: Duration) -> io::Result<Loopback> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let state = Arc::new(State {
            routes,
            latency,
            counts: Mutex::new(HashMap::new()),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("loopback-images")
            .enable_all()
            .build()?;
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = TcpListener::from_std(std_listener) else {
                    return;
                };
                tokio::select! {
                    _ = stopped => {}
                    _ = accept(listener, served) => {}
                }
            });
        });
        Ok(Loopback {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests received for `path`.
    pub fn requests(&self, path: &str) -> u64 {
        self.counts().get(path).copied().unwrap_or(0)
    }

    /// Requests received, by path.
    pub fn counts(&self) -> HashMap<String, u64> {
        self.state
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, state.clone()));
    }
}

/// Answer the requests of one connection until it closes.
async fn serve(stream: TcpStream, state: Arc<State>) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut close = false;
        loop {
            let mut header = String::new();
            if stream.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                close |= name.eq_ignore_ascii_case("connection")
                    && value.trim().eq_ignore_ascii_case("close");
            }
        }
        let nth = {
            let mut counts = state.counts.lock().unwrap_or_else(|p| p.into_inner());
            let n = counts.entry(path.clone()).or_default();
            *n += 1;
            *n as usize - 1
        };
        tokio::time::sleep(state.latency).await;
        let reply = state
            .routes
            .get(&path)
            .cloned()
            .unwrap_or_else(|| Reply::status(404));
        let unsized_body = matches!(reply, Reply::Unsized { .. });
        write_reply(stream.get_mut(), reply, nth).await?;
        if close || unsized_body {
            return Ok(());
        }
    }
}

async fn write_reply(stream: &mut TcpStream, reply: Reply, nth: usize) -> io::Result<()> {
    match reply {
        Reply::Sequence(replies) => {
            let last = replies.len().saturating_sub(1);
            match replies.into_iter().nth(nth.min(last)) {
                Some(r) => Box::pin(write_reply(stream, r, 0)).await,
                None => Box::pin(write_reply(stream, Reply::status(404), 0)).await,
            }
        }
        Reply::Answer {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\n",
                reason(status),
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await
        }
        Reply::Unsized { body } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.shutdown().await
        }
        Reply::Trickle { body, every } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            for byte in body.iter() {
                tokio::time::sleep(every).await;
                stream.write_all(&[*byte]).await?;
            }
            Ok(())
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(server: &Loopback, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn routes_sequences_and_counts() {
        let routes = HashMap::from([
            (
                "/a".to_string(),
                Reply::Sequence(vec![
                    Reply::status(500),
                    Reply::ok("text/plain", &b"hi"[..]),
                ]),
            ),
            ("/r".to_string(), Reply::redirect("/a")),
        ]);
        let server = Loopback::start(routes, Duration::ZERO).unwrap();
        assert!(get(&server, "/a").starts_with("HTTP/1.1 500"));
        let second = get(&server, "/a");
        assert!(
            second.starts_with("HTTP/1.1 200") && second.ends_with("\r\n\r\nhi"),
            "{second}"
        );
        assert!(get(&server, "/r").contains("Location: /a"));
        assert!(get(&server, "/nothing").starts_with("HTTP/1.1 404"));
        assert_eq!(server.requests("/a"), 2);
        assert_eq!(server.requests("/nothing"), 1);
    }
}
