//! `pair.sft` on small tables made here: the join by id, the tables of unmatched rows on
//! both sides, deduplication by image SHA-256 (recorded or computed) and by normalised
//! rationale text, the length and aesthetic filters, and every row accounted for.

use datasets::table::{ShardOptions, ShardWriter, TableReader, read_shard, shards};
use schemas::rationale::Rationale;
use schemas::sft_sample::SftSample;
use schemas::source_image::SourceImage;
use schemas::{ImageData, Provenance, Row};
use stages::pair::{DROPPED, PairConfig, UNMATCHED_IMAGES, UNMATCHED_RATIONALES, write_pairs};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn write_table<R: Row>(dir: &Path, rows: &[R]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut w = ShardWriter::new(
        dir,
        Arc::new(R::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    w.write(&schemas::to_batch(rows).unwrap()).unwrap();
    w.finish().unwrap();
}

/// An image row; `sha` is recorded in its metadata as `images.prepare` does, or absent
/// (then the SHA-256 of `bytes` counts).
fn image(id: &str, bytes: &[u8], sha: Option<&str>, aesthetic: Option<f64>) -> SourceImage {
    SourceImage {
        id: id.into(),
        image: ImageData::from_bytes(bytes.to_vec(), Some(format!("{id}.jpg"))),
        caption: Some(format!("caption of {id}")),
        source: "test".into(),
        width: Some(384),
        height: Some(384),
        aesthetic,
        metadata: sha.map(|s| serde_json::json!({"original": {"sha256": s}}).to_string()),
    }
}

fn rationale(id: &str, text: &str) -> Rationale {
    Rationale {
        id: id.into(),
        brief_caption: Some(format!("brief {id}")),
        detailed_caption: text.into(),
        augmented_prompts: None,
        provenance: vec![Provenance {
            task: "caption".into(),
            model: "m".into(),
            template: "t".into(),
            template_version: 1,
            request_key: "k".into(),
        }],
    }
}

/// id → (reason, detail) of the reject table in `dir`.
fn rejects(dir: &Path) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for shard in shards(dir).unwrap() {
        let df = read_shard(&shard).unwrap();
        let col = |c: &str| -> Vec<String> {
            df.column(c)
                .unwrap()
                .str()
                .unwrap()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect()
        };
        for ((id, reason), detail) in col("id").into_iter().zip(col("reason")).zip(col("detail")) {
            let clash = out.insert(format!("{id}:{reason}"), (reason, detail));
            assert!(clash.is_none());
        }
    }
    out
}

struct Fixture {
    _dir: tempfile::TempDir,
    images: std::path::PathBuf,
    rationales: std::path::PathBuf,
    root: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let images = root.join("images");
    let rationales = root.join("rationales");
    let long = vec!["word"; 40].join(" ");
    write_table(
        &images,
        &[
            image("a", b"A", Some("s1"), Some(6.0)),
            image("b", b"B", Some("s1"), Some(6.0)), // same original as a
            image("c", b"C", Some("s3"), None),      // same rationale as a, normalised
            image("d", b"D", Some("s4"), Some(3.0)), // low aesthetic
            image("e", b"E", Some("s5"), None),      // no score: kept
            image("f", b"F", Some("s6"), Some(9.0)), // rationale too short
            image("g", b"G", Some("s7"), Some(9.0)), // no rationale
            image("a", b"A2", Some("s8"), Some(9.0)), // repeated id
            image("h", b"same bytes", None, None),   // SHA-256 of the bytes …
            image("i", b"same bytes", None, None),   // … the same: a duplicate
            image("j", b"J", Some("s9"), None),      // rationale too long
            image("k", b"K", Some("s10"), Some(1.0)), // low aesthetic, first of its image …
            image("l", b"L", Some("s10"), Some(8.0)), // … so this copy is kept
        ],
    );
    write_table(
        &rationales,
        &[
            rationale("z", "a rationale whose image never came"),
            rationale("a", "A red cube sits on a wooden table."),
            rationale("b", "Two blue spheres roll across the floor."),
            rationale("c", "a RED cube -- sits on a wooden table!"),
            rationale("d", "A green cone under a lamp in the evening."),
            rationale("e", "A yellow torus leans against a glass wall."),
            rationale("e", "A second rationale for e, which is set aside."),
            rationale("f", "Cube."),
            rationale("h", "A purple pyramid in soft morning light."),
            rationale("i", "An orange cylinder behind a small chair."),
            rationale("j", &long),
            rationale("k", "A white star above a dark lake at night."),
            rationale("l", "A black ring beside a tall window frame."),
        ],
    );
    Fixture {
        _dir: dir,
        images,
        rationales,
        root,
    }
}

fn samples(dir: &Path) -> Vec<SftSample> {
    TableReader::open(dir)
        .unwrap()
        .rows::<SftSample>()
        .unwrap()
        .flat_map(|r| r.unwrap())
        .collect()
}

#[test]
fn pairs_are_joined_filtered_and_deduplicated_and_every_row_is_accounted_for() {
    let f = fixture();
    let out = f.root.join("pairs");
    let config = PairConfig {
        min_tokens: Some(3),
        max_tokens: Some(30),
        min_aesthetic: Some(5.0),
        ..PairConfig::default()
    };
    let summary = write_pairs(&config, &f.images, &f.rationales, &out, &()).unwrap();

    let kept = samples(&out);
    let ids: Vec<&str> = kept.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "e", "h", "l"]);
    let a = &kept[0];
    assert_eq!(a.rationale, "A red cube sits on a wooden table.");
    assert_eq!(
        a.image.bytes.as_deref(),
        Some(&b"A"[..]),
        "the first row of id `a`"
    );
    assert_eq!(a.prompts.short_caption.as_deref(), Some("brief a"));
    assert_eq!(a.provenance[0].model, "m");
    assert_eq!(
        kept[1].rationale,
        "A yellow torus leans against a glass wall."
    );

    let unmatched_images = rejects(&out.join(UNMATCHED_IMAGES));
    assert_eq!(
        unmatched_images.keys().collect::<Vec<_>>(),
        ["g:no_rationale"]
    );
    let unmatched_rationales = rejects(&out.join(UNMATCHED_RATIONALES));
    assert_eq!(
        unmatched_rationales.keys().collect::<Vec<_>>(),
        ["z:no_image"]
    );
    let dropped = rejects(&out.join(DROPPED));
    let keys: Vec<&str> = dropped.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "a:duplicate_id",
            "b:duplicate_image",
            "c:duplicate_rationale",
            "d:low_aesthetic",
            "e:duplicate_id",
            "f:rationale_too_short",
            "i:duplicate_image",
            "j:rationale_too_long",
            "k:low_aesthetic",
        ]
    );
    let detail = |k: &str| dropped[k].1.as_str();
    assert_eq!(
        detail("b:duplicate_image"),
        "the same image (sha256) as `a`"
    );
    assert_eq!(
        detail("i:duplicate_image"),
        "the same image (sha256) as `h`"
    );
    assert_eq!(
        detail("c:duplicate_rationale"),
        "the same rationale (normalised) as `a`"
    );
    assert_eq!(
        detail("f:rationale_too_short"),
        "1 tokens, under min_tokens = 3"
    );
    assert_eq!(
        detail("j:rationale_too_long"),
        "40 tokens, over max_tokens = 30"
    );
    assert!(
        detail("d:low_aesthetic").starts_with("aesthetic score 3"),
        "{}",
        detail("d:low_aesthetic")
    );

    // Every input row is in exactly one table: 13 images and 13 rationales.
    assert_eq!(summary.samples.rows, 4);
    assert_eq!(
        (summary.unmatched_images, summary.unmatched_rationales),
        (1, 1)
    );
    let image_side = kept.len() + unmatched_images.len() + dropped.len() - 1; // e:duplicate_id is a rationale
    assert_eq!(image_side, 13);
    assert_eq!(summary.dropped.values().sum::<u64>(), 9);
    assert_eq!(summary.dropped["duplicate_image"], 2);
}

#[test]
fn deduplication_and_filters_are_off_when_configured_so() {
    let f = fixture();
    let out = f.root.join("all");
    let config = PairConfig {
        dedup_images: false,
        dedup_rationales: false,
        ..PairConfig::default()
    };
    write_pairs(&config, &f.images, &f.rationales, &out, &()).unwrap();
    let ids: Vec<String> = samples(&out).into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e", "f", "h", "i", "j", "k", "l"]);
    let dropped = rejects(&out.join(DROPPED));
    assert_eq!(
        dropped.keys().collect::<Vec<_>>(),
        ["a:duplicate_id", "e:duplicate_id"]
    );
}
