//! `report.dataset` on a small dataset made end to end here (a folder of images, some
//! broken, prepared, paired with rationales): the pages, plots, samples and figures
//! are written, and the rows set aside are counted by reason from the sub-tables of
//! both inputs.

use datasets::table::{ShardOptions, ShardWriter};
use image::{ImageEncoder, Rgb, RgbImage};
use schemas::Row;
use schemas::rationale::Rationale;
use stages::images::prepare::{PrepareConfig, write_prepared};
use stages::images::report::{ReportConfig, write_report};
use stages::pair::{PairConfig, write_pairs};
use stages::sources::image_folder::{ImageFolderConfig, write_image_folder};
use std::path::Path;
use std::sync::Arc;

/// Eight good images of growing size and two broken files.
fn images(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..8u32 {
        let (w, h) = (100 + 100 * i, 80 + 75 * i);
        let img = RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, (i * 30) as u8])
        });
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        std::fs::write(dir.join(format!("img{i}.png")), png).unwrap();
    }
    std::fs::write(dir.join("broken.jpg"), b"not a jpeg at all").unwrap();
    std::fs::write(dir.join("empty.png"), b"").unwrap();
}

fn rationales(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    // img7 has none; `ghost` has no image.
    let rows: Vec<Rationale> = (0..7)
        .map(|i| format!("img{i}"))
        .chain(["ghost".to_string()])
        .map(|id| Rationale {
            detailed_caption: format!(
                "A smooth gradient, {} words in all, for {id} <b>bold</b>.",
                7 + id.len()
            ),
            brief_caption: Some(format!("gradient {id}")),
            id,
            augmented_prompts: None,
            provenance: Vec::new(),
        })
        .collect();
    let mut w = ShardWriter::new(
        dir,
        Arc::new(Rationale::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    w.write(&schemas::to_batch(&rows).unwrap()).unwrap();
    w.finish().unwrap();
}

#[test]
fn the_report_shows_counts_rejects_plots_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    images(&root.join("images"));
    rationales(&root.join("rationales"));
    for sub in ["source", "prepared", "pairs", "report"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let folder = ImageFolderConfig {
        path: "images".into(),
        recursive: true,
        caption_key: "caption".into(),
    };
    write_image_folder(&folder, root, &root.join("source"), &()).unwrap();
    let prepare = PrepareConfig {
        size: 64,
        ..PrepareConfig::default()
    };
    write_prepared(
        &prepare,
        &root.join("source"),
        &root.join("prepared"),
        2,
        &(),
    )
    .unwrap();
    write_pairs(
        &PairConfig::default(),
        &root.join("prepared"),
        &root.join("rationales"),
        &root.join("pairs"),
        &(),
    )
    .unwrap();
    let config = ReportConfig {
        samples: 4,
        ..ReportConfig::default()
    };
    let out = root.join("report");
    let summary = write_report(
        &config,
        &root.join("pairs"),
        Some(&root.join("prepared")),
        &out,
    )
    .unwrap();
    assert_eq!(summary.samples, 7);
    assert_eq!(summary.set_aside, 4, "broken, empty, img7, ghost");

    // The figures, for programs.
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["samples"]["rows"], 7);
    assert_eq!(
        stats["samples"]["prompt_families"][0],
        serde_json::json!(["short_caption", 7])
    );
    assert_eq!(stats["images"]["rows"], 8);
    assert_eq!(stats["images"]["formats"]["png"], 8);
    assert_eq!(stats["images"]["shorter_side"]["min"], 80);
    assert_eq!(stats["images"]["shorter_side"]["max"], 605);
    let reasons: Vec<String> = stats["set_aside"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}/{}/{}={}",
                a["input"].as_str().unwrap(),
                a["table"].as_str().unwrap(),
                a["reason"].as_str().unwrap(),
                a["rows"]
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "samples/unmatched/images/no_rationale=1",
            "samples/unmatched/rationales/no_image=1",
            "images/quarantine/mislabelled=1",
            "images/quarantine/empty=1",
        ]
    );

    // The plots are PNG images; the samples are the prepared images.
    for plot in ["rationale_tokens.png", "image_sizes.png"] {
        let img = image::open(out.join(plot)).unwrap();
        assert_eq!((img.width(), img.height()), (1440, 800), "{plot}");
    }
    let shown: Vec<_> = std::fs::read_dir(out.join("samples")).unwrap().collect();
    assert_eq!(shown.len(), 4);
    let sample = image::open(out.join("samples/00.jpg")).unwrap();
    assert_eq!((sample.width(), sample.height()), (64, 64));

    // The pages: every reason, the plots, the samples with escaped text.
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for needle in [
        "mislabelled",
        "empty",
        "no_rationale",
        "no_image",
        "rationale_tokens.png",
        "image_sizes.png",
        "samples/03.jpg",
        "gradient img0",
        "&lt;b&gt;bold&lt;/b&gt;",
    ] {
        assert!(html.contains(needle), "index.html lacks {needle}");
    }
    assert!(!html.contains("<b>bold</b>"), "rationale text is escaped");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| images | quarantine | mislabelled | 1 |"),
        "{md}"
    );
    assert!(
        md.contains("![Rationale length (7 rows)](rationale_tokens.png)"),
        "{md}"
    );
}
