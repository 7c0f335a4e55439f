//! `recipes/rehearsal.toml`, the real run's DAG at tiny scale, end to end against
//! servers on loopback: a scripted image server (good images, a retried 503, 404s, an
//! HTML page served as a JPEG, an opted-out image), llama.cpp's own server with a tiny
//! random model and vision projector (captions, augmented prompts, the GRPO judge and
//! the benchmarks' substitute judge, every answer grammar-constrained), and a tiny
//! Janus-Pro folder in DeepSeek's original layout (`.bin` shards) read as a user's.
//! Row accounting at every node; a second run is entirely fresh. Also: the rehearsal
//! is `recipes/reasongen_r1.toml` node for node (less `eval.official`), and the real
//! recipe is accepted up to the files and endpoints a user fills in.

mod common;

use common::Project;
use common::llama::{LlamaServer, python};
use serde_json::Value;
use stages::images::fetch::loopback::{Loopback, Reply};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

fn png(i: usize) -> Vec<u8> {
    let (w, h) = (40 + 3 * i as u32, 36 + 2 * i as u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(i * 20) as u8, (x * 6) as u8, (y * 5) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The loopback image server and its URL table: 12 images (one after a 503), two
/// missing paths, an HTML page served as `image/jpeg`, an opted-out image.
fn image_server(p: &Project) -> Loopback {
    let mut routes: HashMap<String, Reply> = (0..11)
        .map(|i| (format!("/img/{i}.png"), Reply::ok("image/png", png(i))))
        .collect();
    routes.insert(
        "/img/11.png".into(),
        Reply::Sequence(vec![Reply::status(503), Reply::ok("image/png", png(11))]),
    );
    routes.insert(
        "/page.jpg".into(),
        Reply::ok(
            "image/jpeg",
            b"<html><body>not an image</body></html>".to_vec(),
        ),
    );
    routes.insert(
        "/private.png".into(),
        Reply::ok("image/png", png(20)).with_header("X-Robots-Tag", "noai"),
    );
    let server = Loopback::start(routes, Duration::from_millis(5)).unwrap();
    let mut csv = String::from("url,caption\n");
    let mut paths: Vec<String> = (0..12).map(|i| format!("/img/{i}.png")).collect();
    paths.extend(["/gone/1.png", "/gone/2.png", "/page.jpg", "/private.png"].map(String::from));
    for (k, path) in paths.iter().enumerate() {
        csv.push_str(&format!("{},picture number {k}\n", server.url(path)));
    }
    p.write("urls.csv", &csv);
    server
}

/// A user's tiny Janus-Pro folder as DeepSeek releases it (`.bin` shards, index,
/// config, tokenizer), positions widened for DPG-Bench's long prompts.
fn janus_folder(to: &Path) {
    let fixtures = common::repo("train/tests/fixtures/janus");
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(fixtures.join("sharded")).unwrap() {
        let f = e.unwrap().path();
        std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::copy(fixtures.join("tokenizer.json"), to.join("tokenizer.json")).unwrap();
    let config = std::fs::read_to_string(to.join("config.json")).unwrap();
    let widened = config.replace(
        "\"max_position_embeddings\": 512",
        "\"max_position_embeddings\": 2048",
    );
    assert_ne!(config, widened);
    std::fs::write(to.join("config.json"), widened).unwrap();
}

/// `node → node_finished event` of the latest run in the store.
fn finished(p: &Project) -> BTreeMap<String, Value> {
    latest_events(p)
        .into_iter()
        .filter(|e| e["event"] == "node_finished")
        .map(|e| (e["node"].as_str().unwrap().to_string(), e))
        .collect()
}

fn latest_events(p: &Project) -> Vec<Value> {
    let runs = p.store().join("runs");
    let mut dirs: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let text = std::fs::read_to_string(dirs.last().unwrap().join("events.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn counter(e: &BTreeMap<String, Value>, node: &str, name: &str) -> u64 {
    e[node]["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("{node}: no counter {name}: {}", e[node]))
}

fn rows(e: &BTreeMap<String, Value>, node: &str) -> u64 {
    e[node]["rows"]
        .as_u64()
        .unwrap_or_else(|| panic!("{node}: no rows: {}", e[node]))
}

/// `name → kind` of a recipe's nodes.
fn nodes(path: &Path) -> BTreeMap<String, String> {
    let recipe: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    recipe["nodes"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["kind"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn the_rehearsal_is_the_real_recipe_node_for_node_less_the_official_evaluators() {
    let real = nodes(&common::repo("recipes/reasongen_r1.toml"));
    let rehearsal = nodes(&common::repo("recipes/rehearsal.toml"));
    let official: Vec<&String> = real
        .iter()
        .filter(|(_, kind)| *kind == "eval.official")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(official.len(), 3, "{real:?}");
    let mut expected = real.clone();
    expected.retain(|_, kind| kind != "eval.official");
    assert_eq!(rehearsal, expected);
}

#[test]
fn the_real_recipe_is_accepted_up_to_what_a_user_fills_in() {
    let p = Project::new();
    let out = p.run(&[
        "plan",
        common::repo("recipes/reasongen_r1.toml").to_str().unwrap(),
    ]);
    let text = out.text();
    assert_ne!(out.code, Some(0), "{text}");
    // The recipe itself is valid (no config, kind or input problem: the plan is
    // drawn); every node it cannot plan is one whose file a user fills in, named.
    assert!(text.contains("0 fresh, 23 stale"), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("  error")).collect();
    for l in &errors {
        assert!(
            l.contains("FILL-IN"),
            "an error that is not a value to fill in: {l}\n{text}"
        );
    }
    let named: Vec<&str> = errors
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        named,
        [
            "urls",
            "janus",
            "rl_prompts",
            "dpg",
            "official_geneval",
            "official_dpg",
            "official_t2i"
        ],
        "{text}"
    );
    assert!(text.contains("7 errors"), "{text}");
}

#[test]
fn the_rehearsal_runs_against_loopback_servers_and_a_second_run_is_fresh() {
    let Some(py) = python() else { return };
    let p = Project::new();
    let images = image_server(&p);
    let llama = LlamaServer::start(&py, &p.path(""));
    janus_folder(&p.path("Janus-Pro"));
    p.write(
        "rl_prompts.txt",
        "a red apple\ntwo blue cups\na dog to the left of a cat\na green car and a bench\n",
    );
    let api = format!("{}/v1", llama.url);
    let sets = [
        format!("urls.path={}", p.path("urls.csv").display()),
        format!("janus.path={}", p.path("Janus-Pro").display()),
        format!("rl_prompts.path={}", p.path("rl_prompts.txt").display()),
        format!("caption.endpoint.base_url={api}"),
        format!("augment.endpoint.base_url={api}"),
        format!("grpo.reward.vlm.endpoint.base_url={api}"),
        format!("judge_geneval.endpoint.base_url={api}"),
        format!("judge_dpg.endpoint.base_url={api}"),
        format!("judge_t2i.endpoint.base_url={api}"),
    ];
    let recipe = common::repo("recipes/rehearsal.toml");
    let mut args = vec!["run".to_string(), recipe.display().to_string()];
    for s in &sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = p.run(&args);
    assert_eq!(
        first.code,
        Some(0),
        "{}\nllama.cpp:\n{}",
        first.text(),
        llama.log_text()
    );
    let e = finished(&p);
    assert_eq!(e.len(), 27, "every node ran: {:?}", e.keys());

    // URLs = images + failure rows, each failure with its reason.
    assert_eq!(rows(&e, "urls"), 16);
    assert_eq!(rows(&e, "fetch"), 12);
    assert_eq!(counter(&e, "fetch", "images"), 12);
    assert_eq!(counter(&e, "fetch", "failed"), 4);
    assert_eq!(counter(&e, "fetch", "http_404"), 2);
    assert_eq!(counter(&e, "fetch", "failed_not_an_image"), 1);
    assert_eq!(counter(&e, "fetch", "failed_opted_out"), 1);
    assert_eq!(images.requests("/img/11.png"), 2, "the 503 was retried");
    // Every image prepared, captioned and augmented.
    assert_eq!(rows(&e, "prepare"), 12);
    assert_eq!(counter(&e, "prepare", "quarantined"), 0);
    assert_eq!(rows(&e, "caption"), 12);
    assert_eq!(rows(&e, "augment"), 12);
    // Pairs plus the rows set aside (with their reasons) are the images.
    let pairs = rows(&e, "pairs");
    let set_aside: u64 = e["pairs"]["counters"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("dropped_") || k.ends_with("_without_rationale"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert!(pairs > 0);
    assert_eq!(pairs + set_aside, 12, "{}", e["pairs"]);
    // Every pair gets its VQ-16 codes and goes into the release.
    assert_eq!(rows(&e, "samples"), pairs);
    assert_eq!(counter(&e, "samples", "images"), pairs);
    assert_eq!(rows(&e, "release"), pairs);
    // GRPO's steps, judged over HTTP.
    assert_eq!(counter(&e, "grpo", "steps"), 2);
    // The benchmarks: prompts × samples images each, every one judged, scores labelled.
    assert_eq!(rows(&e, "draw_geneval"), 3 * 4);
    assert_eq!(rows(&e, "draw_dpg"), 2 * 4);
    assert_eq!(rows(&e, "draw_t2i"), 2 * 10);
    let out = first.text();
    for (node, label, images) in [
        ("judge_geneval", "GenEval (substitute: VLM tiny-random)", 12),
        ("judge_dpg", "DPG-Bench (substitute: VLM tiny-random)", 8),
        (
            "judge_t2i",
            "T2I-CompBench (substitute: VLM tiny-random)",
            20,
        ),
    ] {
        let line = format!("{node}: {label}: overall");
        assert!(out.contains(&line), "{line}\n{out}");
        assert!(
            out.contains(&format!("on {images} images; 0 unparsed, 0 failed")),
            "{node}\n{out}"
        );
    }
    assert!(rows(&e, "scores") >= 3, "{}", e["scores"]);
    assert!(
        out.contains("contamination: 0 of 7 benchmark prompts appear"),
        "{out}"
    );

    // Again: nothing runs, nothing is sent.
    let requests: u64 = images.counts().values().sum();
    let second = p.run(&args).ok();
    let events = latest_events(&p);
    let cached = events
        .iter()
        .filter(|e| e["event"] == "node_cached")
        .count();
    let ran = events
        .iter()
        .filter(|e| e["event"] == "node_started" || e["event"] == "node_finished")
        .count();
    assert_eq!((cached, ran), (27, 0), "{}", second.text());
    assert!(
        second.text().contains("0 ran, 27 fresh"),
        "{}",
        second.text()
    );
    assert_eq!(images.counts().values().sum::<u64>(), requests);
}
