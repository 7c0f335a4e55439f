//! The benchmark's image server: [`stages::images::fetch::loopback`] in a process of
//! its own (this binary, started again with a hidden flag), so that the CPU time
//! measured for each client is the client's alone. Path `i` serves a JPEG of a few KB
//! after the latency, except that one in 50 is missing (404) and one in 100 is an
//! HTML page served as `image/jpeg`; [`expected`] says how many of each.

use anyhow::{Context, Result, bail};
use stages::images::fetch::loopback::{Loopback, Reply};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The hidden flag that makes `reasongen bench fetch` a server.
pub const SERVE_FLAG: &str = "--serve";

/// What path `i` serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Missing,
    NotAnImage,
}

pub fn kind(i: usize) -> Kind {
    if i % 50 == 7 {
        Kind::Missing
    } else if i % 100 == 13 {
        Kind::NotAnImage
    } else {
        Kind::Image
    }
}

/// (images, 404s, not images) among `n` paths.
pub fn expected(n: usize) -> (usize, usize, usize) {
    let count = |k| (0..n).filter(|&i| kind(i) == k).count();
    (
        count(Kind::Image),
        count(Kind::Missing),
        count(Kind::NotAnImage),
    )
}

pub fn path(i: usize) -> String {
    format!("/img/{i:06}.jpg")
}

/// 16 different noisy 96×96 JPEGs (about 3–5 KB each).
fn jpegs() -> Vec<Arc<[u8]>> {
    (0..16u32)
        .map(|k| {
            let img = image::RgbImage::from_fn(96, 96, |x, y| {
                let h = (x * 7919 + y * 104_729 + k * 31) % 251;
                image::Rgb([h as u8, (x * 2 + k) as u8, (y * 2) as u8])
            });
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Jpeg)
                .expect("JPEG encoding into memory");
            out.into_inner().into()
        })
        .collect()
}

/// Serve `n` paths (answering after `latency`) until standard input closes; the first
/// line printed is the root URL.
pub fn serve(n: usize, latency: Duration) -> Result<()> {
    let bodies = jpegs();
    let html: Arc<[u8]> = b"<!DOCTYPE html><html><body>not here</body></html>"[..].into();
    let routes: HashMap<String, Reply> = (0..n)
        .filter_map(|i| {
            let reply = match kind(i) {
                Kind::Missing => return None,
                Kind::Image => Reply::ok("image/jpeg", bodies[i % bodies.len()].clone()),
                Kind::NotAnImage => Reply::ok("image/jpeg", html.clone()),
            };
            Some((path(i), reply))
        })
        .collect();
    let server = Loopback::start(routes, latency)?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", server.url(""))?;
    out.flush()?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}

/// A server process; dropping it closes its input, which ends it.
pub struct Server {
    child: Child,
    pub root: String,
}

impl Server {
    pub fn start(n: usize, latency: Duration) -> Result<Server> {
        let exe = std::env::current_exe().context("locating this executable")?;
        let mut child = Command::new(exe)
            .args(["bench", "fetch", SERVE_FLAG, "--images"])
            .arg(n.to_string())
            .arg("--latency-ms")
            .arg(latency.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the image server")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let root = line.trim().to_string();
        if !root.starts_with("http://") {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the image server did not start (it printed {line:?})");
        }
        Ok(Server { child, root })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
