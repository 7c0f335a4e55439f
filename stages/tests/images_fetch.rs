//! `images.fetch` against a loopback server that scripts every way a URL can end:
//! good PNG and JPEG, 404, 500 then 200, 429 with `Retry-After`, a slow-loris body, a
//! redirect loop, a redirect chain over the limit, a body over the byte cap (announced
//! by its length, and one without a length, cut off mid-stream), a JPEG served as
//! `text/html`, an HTML page served as `image/jpeg`, an opted-out image, bad URLs.
//! Every URL must end as one row, with the right reason, after the right number of
//! requests; a second run with the memo fetches only what was not final.

use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use datasets::images::rejects::Reject;
use datasets::table::{ShardOptions, ShardWriter, TableReader};
use schemas::source_image::SourceImage;
use stages::images::fetch::loopback::{Loopback, Reply};
use stages::images::fetch::{FAILED, FetchConfig, write_fetched};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn encoded(format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(12, 8, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// The scripted server and the URL of each case, with the outcome expected.
fn server() -> (Loopback, Vec<(String, &'static str)>) {
    let png = encoded(image::ImageFormat::Png);
    let jpeg = encoded(image::ImageFormat::Jpeg);
    let html = b"<!DOCTYPE html><html><body>gone</body></html>".to_vec();
    let mut routes = HashMap::from([
        ("/good.png".to_string(), Reply::ok("image/png", png.clone())),
        (
            "/good.jpg".to_string(),
            Reply::ok("image/jpeg", jpeg.clone()),
        ),
        (
            "/flaky.png".to_string(),
            Reply::Sequence(vec![
                Reply::status(500),
                Reply::ok("image/png", png.clone()),
            ]),
        ),
        (
            "/busy.png".to_string(),
            Reply::Sequence(vec![
                Reply::status(429).with_header("Retry-After", "1"),
                Reply::ok("image/png", png.clone()),
            ]),
        ),
        ("/down.png".to_string(), Reply::status(503)),
        (
            "/slow.png".to_string(),
            Reply::Trickle {
                body: png.clone().into(),
                every: Duration::from_millis(100),
            },
        ),
        ("/loop-a".to_string(), Reply::redirect("/loop-b")),
        ("/loop-b".to_string(), Reply::redirect("/loop-a")),
        ("/moved".to_string(), Reply::redirect("/good.png")),
        (
            "/big.png".to_string(),
            Reply::ok("image/png", vec![0x89; 60_000]),
        ),
        (
            "/big-unsized.png".to_string(),
            Reply::Unsized {
                body: vec![0x89; 60_000].into(),
            },
        ),
        (
            "/html.jpg".to_string(),
            Reply::ok("text/html", jpeg.clone()),
        ),
        ("/page.jpg".to_string(), Reply::ok("image/jpeg", html)),
        (
            "/noai.png".to_string(),
            Reply::ok("image/png", png.clone()).with_header("X-Robots-Tag", "noimageai, nofollow"),
        ),
        (
            "/otherbot.png".to_string(),
            Reply::ok("image/png", png.clone()).with_header("X-Robots-Tag", "otherbot: noai"),
        ),
    ]);
    for i in 0..6 {
        routes.insert(
            format!("/chain-{i}"),
            Reply::redirect(&format!("/chain-{}", i + 1)),
        );
    }
    let server = Loopback::start(routes, Duration::from_millis(5)).unwrap();
    let mut cases: Vec<(String, &str)> = [
        ("/good.png", "png"),
        ("/good.jpg", "jpeg"),
        ("/missing.png", "http_status"),
        ("/flaky.png", "png"),
        ("/busy.png", "png"),
        ("/down.png", "http_status"),
        ("/slow.png", "timeout"),
        ("/loop-a", "redirect_loop"),
        ("/chain-0", "too_many_redirects"),
        ("/moved", "png"),
        ("/big.png", "too_large"),
        ("/big-unsized.png", "too_large"),
        ("/html.jpg", "jpeg"),
        ("/page.jpg", "not_an_image"),
        ("/noai.png", "opted_out"),
        ("/otherbot.png", "png"),
    ]
    .into_iter()
    .map(|(path, want)| (server.url(path), want))
    .collect();
    cases.push(("not a url".into(), "bad_url"));
    cases.push(("ftp://127.0.0.1/x.png".into(), "bad_url"));
    (server, cases)
}

/// A URL table: `link` (the URLs, `None` for a null), `alt` (captions) and `rank`
/// (kept as metadata).
fn write_input(dir: &Path, urls: &[Option<String>]) {
    let n = urls.len();
    let batch = RecordBatch::try_from_iter([
        (
            "link",
            Arc::new(StringArray::from(urls.to_vec())) as ArrayRef,
        ),
        (
            "alt",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("caption {i}")),
            )) as ArrayRef,
        ),
        (
            "rank",
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
        ),
    ])
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let mut w = ShardWriter::new(dir, batch.schema(), ShardOptions::default());
    w.write(&batch).unwrap();
    w.finish().unwrap();
}

fn config() -> FetchConfig {
    FetchConfig {
        url_column: "link".into(),
        caption_column: Some("alt".into()),
        retries: 2,
        backoff_s: 0.05,
        max_backoff_s: 5.0,
        read_timeout_s: 0.5,
        deadline_s: 1.0,
        max_bytes: 50_000,
        max_redirects: 3,
        per_host_requests_per_second: 0.0,
        ..FetchConfig::default()
    }
}

fn read_output(out: &Path) -> (Vec<SourceImage>, Vec<Reject>) {
    let images: Vec<SourceImage> = TableReader::open(out)
        .unwrap()
        .rows::<SourceImage>()
        .unwrap()
        .flat_map(Result::unwrap)
        .collect();
    let mut rejects = Vec::new();
    for batch in TableReader::open(&out.join(FAILED)).unwrap().batches(None) {
        let batch = batch.unwrap();
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let (ids, reasons, details, sources) =
            (col("id"), col("reason"), col("detail"), col("source"));
        for i in 0..batch.num_rows() {
            rejects.push(Reject {
                id: ids.value(i).to_string(),
                reason: reasons.value(i).to_string(),
                detail: details.value(i).to_string(),
                path: None,
                source: sources.is_valid(i).then(|| sources.value(i).to_string()),
            });
        }
    }
    (images, rejects)
}

#[test]
fn every_url_ends_as_one_row_with_its_reason() {
    let (server, cases) = server();
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    let mut urls: Vec<Option<String>> = cases.iter().map(|(u, _)| Some(u.clone())).collect();
    urls.push(None);
    write_input(&input, &urls);
    let t = Instant::now();
    let summary = write_fetched(&config(), &input, &out, None, 2, &()).unwrap();
    let took = t.elapsed();
    let (images, failed) = read_output(&out);

    // Every input row is in exactly one table, in input order within each.
    assert_eq!(images.len() + failed.len(), urls.len());
    let mut outcome: BTreeMap<String, String> = BTreeMap::new();
    for img in &images {
        let sniffed = img
            .image
            .path
            .as_deref()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap();
        assert!(
            outcome
                .insert(img.id.clone(), sniffed.to_string())
                .is_none()
        );
    }
    for f in &failed {
        assert!(
            outcome.insert(f.id.clone(), f.reason.clone()).is_none(),
            "{} twice",
            f.id
        );
    }
    for (i, (url, want)) in cases.iter().enumerate() {
        assert_eq!(outcome[&format!("{i:08}")], *want, "{url}");
    }
    let null_row = format!("{:08}", cases.len());
    assert_eq!(outcome[&null_row], "bad_url");

    // What the rows hold.
    let good = images
        .iter()
        .find(|r| r.source.ends_with("/good.png"))
        .unwrap();
    assert_eq!((good.width, good.height), (Some(12), Some(8)));
    assert_eq!(good.caption.as_deref(), Some("caption 0"));
    assert_eq!(good.metadata.as_deref(), Some(r#"{"rank":0}"#));
    assert_eq!(
        good.image.bytes.as_deref(),
        Some(&encoded(image::ImageFormat::Png)[..])
    );
    let detail = |path: &str| {
        failed
            .iter()
            .find(|f| f.source.as_deref().is_some_and(|s| s.ends_with(path)))
            .map(|f| f.detail.clone())
            .unwrap()
    };
    assert_eq!(detail("/missing.png"), "HTTP 404 Not Found");
    assert_eq!(detail("/down.png"), "HTTP 503 Service Unavailable");
    assert!(
        detail("/noai.png").contains("noimageai"),
        "{}",
        detail("/noai.png")
    );
    assert!(
        detail("/slow.png").contains("deadline"),
        "{}",
        detail("/slow.png")
    );

    // Requests: retries where they are due, and only there.
    let requests = server.counts();
    assert_eq!(requests["/flaky.png"], 2, "500 then 200");
    assert_eq!(requests["/busy.png"], 2, "429 then 200");
    assert_eq!(requests["/down.png"], 3, "the first try and 2 retries");
    assert_eq!(requests["/missing.png"], 1, "404 is not retried");
    assert_eq!(requests["/slow.png"], 1);
    assert_eq!(requests["/loop-a"] + requests["/loop-b"], 2);
    assert_eq!(
        requests.get("/chain-4"),
        None,
        "3 redirects followed, not a 4th"
    );
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After: 1 waited for ({took:?})"
    );

    // The statistics.
    let s = &summary.stats;
    assert_eq!(
        (s.images, s.failed),
        (images.len() as u64, failed.len() as u64)
    );
    assert_eq!(s.images, 7);
    let reasons: BTreeMap<&str, u64> = s.reasons.iter().map(|(r, n)| (r.name(), *n)).collect();
    assert_eq!(
        reasons,
        BTreeMap::from([
            ("bad_url", 3),
            ("http_status", 2),
            ("not_an_image", 1),
            ("opted_out", 1),
            ("redirect_loop", 1),
            ("timeout", 1),
            ("too_large", 2),
            ("too_many_redirects", 1),
        ])
    );
    assert_eq!(s.statuses, BTreeMap::from([(404, 1), (503, 1)]));
    assert_eq!(s.retries, 4);
    let host = server.url("").trim_start_matches("http://").to_string();
    assert_eq!(s.hosts[&host].images, 7);
    assert_eq!(summary.table.rows, 7);
}

#[test]
fn a_second_run_fetches_only_what_was_not_final() {
    let (server, cases) = server();
    let dir = tempfile::tempdir().unwrap();
    let store = pipeline::store::Store::open(&dir.path().join("store")).unwrap();
    let memo = store.memo("images.fetch").unwrap();
    let input = dir.path().join("in");
    write_input(
        &input,
        &cases
            .iter()
            .map(|(u, _)| Some(u.clone()))
            .collect::<Vec<_>>(),
    );
    let first = write_fetched(
        &config(),
        &input,
        &dir.path().join("a"),
        Some(&memo),
        2,
        &(),
    )
    .unwrap();
    let before = server.counts();
    let second = write_fetched(
        &config(),
        &input,
        &dir.path().join("b"),
        Some(&memo),
        2,
        &(),
    )
    .unwrap();
    let after = server.counts();
    let again: BTreeMap<&str, u64> = after
        .iter()
        .filter(|(p, n)| before.get(*p) != Some(n))
        .map(|(p, n)| (p.as_str(), n - before.get(p).copied().unwrap_or(0)))
        .collect();
    // Only the transient failures are tried again: the slow body and the 503s.
    assert_eq!(again, BTreeMap::from([("/down.png", 3), ("/slow.png", 1)]));
    assert_eq!(
        second.stats.from_memo,
        cases.len() as u64 - 2 - 2,
        "2 bad URLs, 2 transient"
    );
    assert_eq!(
        read_output(&dir.path().join("a")),
        read_output(&dir.path().join("b"))
    );
    assert_eq!(first.stats.reasons, second.stats.reasons);
}
