//! Release export: layout, card, checksums, stable splits, byte-identical output, and
//! the Python tools opening it untouched.

use datasets::release::{CardInfo, ExportOptions, Splits, export};
use datasets::table::{ShardOptions, ShardWriter};
use schemas::sft_sample::SftSample;
use schemas::{AugmentedPrompts, ImageData, Provenance, Row, to_batch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SIDE: u32 = 24;

fn png(i: usize) -> Vec<u8> {
    let img = image::RgbImage::from_fn(SIDE, SIDE, |x, y| {
        image::Rgb([(x * 10 + i as u32) as u8, (y * 10) as u8, (i * 7) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn sample(i: usize) -> SftSample {
    SftSample {
        id: format!("img-{i:04}"),
        prompts: AugmentedPrompts {
            short_caption: Some(format!("shape {i}")),
            paraphrases: vec![format!("a picture of shape {i}")],
            tags: vec!["shape".into()],
            varied_captions: vec![],
            object_prompts: vec!["square".into()],
        },
        rationale: format!(
            "A {} square on a white background, number {i}.",
            ["red", "blue"][i % 2]
        ),
        image: ImageData::from_bytes(png(i), Some(format!("img-{i:04}.png"))),
        image_codes: Some((0..16).map(|c| (c * i) as u16).collect()),
        tokenizer: Some("patch_vq@test".into()),
        provenance: vec![Provenance {
            task: "teacher".into(),
            model: "shapes-teacher".into(),
            template: "detailed_caption".into(),
            template_version: 1,
            request_key: format!("{i:064x}"),
        }],
    }
}

fn table(dir: &Path, n: usize) -> PathBuf {
    let t = dir.join(format!("table{n}"));
    std::fs::create_dir_all(&t).unwrap();
    let rows: Vec<SftSample> = (0..n).map(sample).collect();
    let mut w = ShardWriter::new(
        &t,
        Arc::new(SftSample::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    for part in rows.chunks(7) {
        w.write(&to_batch(part).unwrap()).unwrap();
    }
    w.finish().unwrap();
    t
}

fn options(shard_bytes: u64) -> ExportOptions {
    ExportOptions {
        splits: Splits::new(vec![("train".into(), 0.8), ("test".into(), 0.2)], 11).unwrap(),
        id_column: "id".into(),
        shard: ShardOptions {
            target_shard_bytes: shard_bytes,
            row_group_rows: 8,
            ..ShardOptions::default()
        },
        card: CardInfo {
            name: "Shapes rationales".into(),
            description: "A test release.".into(),
            license: "cc-by-4.0".into(),
            recipe: "test".into(),
            node: "export".into(),
            run_key: "ab".repeat(32),
            source: "cd".repeat(32),
        },
    }
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn layout_card_and_checksums() {
    let tmp = tempfile::tempdir().unwrap();
    let t = table(tmp.path(), 60);
    let out = tmp.path().join("release");
    let report = export(&t, &out, &options(4_000)).unwrap();
    assert_eq!(report.rows, 60);
    let all = files(&out);
    let data: Vec<&String> = all.keys().filter(|k| k.starts_with("data/")).collect();
    let train_shards = report
        .splits
        .iter()
        .find(|s| s.name == "train")
        .unwrap()
        .shards;
    assert!(train_shards > 1, "small shard target: several shards");
    assert!(
        all.contains_key(&format!("data/train-00000-of-{train_shards:05}.parquet")),
        "{data:?}"
    );
    assert!(data.iter().all(|k| k.contains("-of-")));
    assert!(
        all.keys()
            .any(|k| k.starts_with("provenance/test-00000-of-"))
    );

    let readme = String::from_utf8(all["README.md"].clone()).unwrap();
    for expected in [
        "license: cc-by-4.0",
        "- config_name: default",
        "path: data/train-*",
        "- config_name: provenance",
        "dtype: image",
        "num_examples:",
        "# Shapes rationales",
        "sft_sample@1",
        "| teacher | shapes-teacher | detailed_caption | 1 | 60 |",
        "| words (whitespace tokens) |",
    ] {
        assert!(
            readme.contains(expected),
            "card lacks {expected:?}:\n{readme}"
        );
    }
    // SHA256SUMS covers every other file, with the right digests.
    let sums = String::from_utf8(all["SHA256SUMS"].clone()).unwrap();
    assert_eq!(sums.lines().count(), all.len() - 1);
    for line in sums.lines() {
        let (hash, path) = line.split_once("  ").unwrap();
        use sha2::Digest;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&all[path])),
            hash,
            "{path}"
        );
    }
}

#[test]
fn same_input_gives_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = table(tmp.path(), 40);
    export(&t, &tmp.path().join("a"), &options(30_000)).unwrap();
    export(&t, &tmp.path().join("b"), &options(30_000)).unwrap();
    assert_eq!(files(&tmp.path().join("a")), files(&tmp.path().join("b")));
}

#[test]
fn rows_keep_their_split_as_the_dataset_grows() {
    let tmp = tempfile::tempdir().unwrap();
    let small = table(tmp.path(), 30);
    let big = table(tmp.path(), 90);
    export(&small, &tmp.path().join("small"), &options(1 << 30)).unwrap();
    export(&big, &tmp.path().join("big"), &options(1 << 30)).unwrap();
    let split_of = |dir: &Path| -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for split in ["train", "test"] {
            let r = datasets::table::TableReader::from_files(vec![
                dir.join(format!("data/{split}-00000-of-00001.parquet")),
            ]);
            for rows in r.rows::<SftSample>().unwrap() {
                for row in rows.unwrap() {
                    out.insert(row.id, split.to_string());
                }
            }
        }
        out
    };
    let small = split_of(&tmp.path().join("small"));
    let big = split_of(&tmp.path().join("big"));
    assert_eq!(small.len(), 30);
    assert_eq!(big.len(), 90);
    for (id, split) in &small {
        assert_eq!(&big[id], split, "{id} moved");
    }
}

#[test]
fn a_missing_id_column_and_a_non_empty_folder_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = table(tmp.path(), 5);
    let mut o = options(1 << 30);
    o.id_column = "uid".into();
    let e = export(&t, &tmp.path().join("r"), &o).unwrap_err();
    assert!(e.to_string().contains("no id column `uid`"), "{e}");
    let busy = tmp.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), "").unwrap();
    let e = export(&t, &busy, &options(1 << 30)).unwrap_err();
    assert!(e.to_string().contains("must be empty"), "{e}");
}

/// The Python interpreter with `datasets`, `pyarrow`, `polars` and `pillow`:
/// `$REASONGEN_PYTHON`, or `python3`. `.ci/run` installs them and sets
/// `REASONGEN_REQUIRE_PYTHON=1`, so there a missing package fails the test.
fn python() -> Option<String> {
    let py = std::env::var("REASONGEN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py)
        .args(["-c", "import datasets, pyarrow, polars, PIL"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var("REASONGEN_REQUIRE_PYTHON").is_err(),
        "{py} lacks datasets/pyarrow/polars/pillow but REASONGEN_REQUIRE_PYTHON is set"
    );
    eprintln!("skipped: {py} lacks datasets, pyarrow, polars or pillow (see .ci/run)");
    None
}

#[test]
fn datasets_pyarrow_and_polars_open_the_release() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = table(tmp.path(), 25);
    let out = tmp.path().join("release");
    export(&t, &out, &options(1 << 30)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_release.py");
    let o = std::process::Command::new(&py)
        .arg(&script)
        .arg(&out)
        .arg("25")
        .arg(SIDE.to_string())
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_DATASETS_CACHE", tmp.path().join("hf-cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    assert_eq!(report["image_feature"], "Image");
    assert_eq!(report["schema_id"], "sft_sample@1");
    assert_eq!(report["polars_rows"], 25);
    assert_eq!(report["provenance_rows"], 25);
}
