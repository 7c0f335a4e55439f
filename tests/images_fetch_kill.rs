//! `images.fetch` killed with `kill -9` in the middle of a list and run again: the
//! loopback server counts the requests of every URL, and nothing the first run had
//! stored in the memo is fetched again; the second run's table is complete.

mod common;

use common::Project;
use stages::images::fetch::loopback::{Loopback, Reply};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const URLS: usize = 300;

fn png(i: usize) -> Vec<u8> {
    let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([i as u8, x as u8, y as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The counters and rows of the `fetch` node's `node_finished` events.
fn finished(p: &Project) -> Vec<serde_json::Value> {
    p.store_files()
        .into_iter()
        .filter(|(path, _)| path.ends_with("events.jsonl"))
        .flat_map(|(_, text)| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .filter(|e| e["event"] == "node_finished" && e["node"] == "fetch")
        .collect()
}

#[test]
fn kill_9_mid_fetch_then_rerun_fetches_nothing_stored_twice() {
    let routes: HashMap<String, Reply> = (0..URLS)
        .map(|i| (format!("/img/{i}.png"), Reply::ok("image/png", png(i))))
        .collect();
    let server = Loopback::start(routes, Duration::from_millis(40)).unwrap();
    let p = Project::new();
    let mut csv = String::from("url,caption\n");
    for i in 0..URLS {
        csv.push_str(&format!(
            "{},picture {i}\n",
            server.url(&format!("/img/{i}.png"))
        ));
    }
    p.write("urls.csv", &csv);
    p.write(
        "r.toml",
        r#"
[nodes.src]
kind = "table.import"
config = { path = "urls.csv" }

[nodes.fetch]
kind = "images.fetch"
inputs = { urls = "src" }
config = { caption_column = "caption", concurrency = 4, per_host_concurrency = 4, per_host_requests_per_second = 0 }
"#,
    );
    let total = |s: &Loopback| s.counts().values().sum::<u64>();
    let mut child = p
        .cmd(&["run", "r.toml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while total(&server) < 100 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the fetch never got going"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = server.counts();
    assert!(
        at_kill.len() < URLS,
        "killed mid-list ({} fetched)",
        at_kill.len()
    );
    assert!(finished(&p).is_empty(), "the killed node did not finish");

    p.run(&["run", "r.toml"]).ok();
    let after = server.counts();
    let events = finished(&p);
    assert_eq!(events.len(), 1);
    let (rows, from_memo) = (&events[0]["rows"], &events[0]["counters"]["from_memo"]);
    assert_eq!(rows.as_u64(), Some(URLS as u64), "{}", events[0]);

    // Every URL was fetched; what the memo held was not fetched again, and only the
    // few requests in flight at the kill (at most `concurrency`) were sent twice.
    assert_eq!(after.len(), URLS);
    let second_run: u64 = after.values().sum::<u64>() - at_kill.values().sum::<u64>();
    let from_memo = from_memo.as_u64().unwrap();
    assert_eq!(second_run, URLS as u64 - from_memo);
    let twice = after.values().filter(|&&n| n == 2).count();
    assert!(after.values().all(|&n| n <= 2));
    assert!(twice <= 4, "{twice} URLs fetched twice");
    assert!(from_memo as usize + twice >= at_kill.len() && from_memo > 0);
}
