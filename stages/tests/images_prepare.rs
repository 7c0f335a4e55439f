//! `images.prepare` on a corpus of hostile images made here, read from a folder by
//! `source.image_folder` as a user's would be: each bad file is quarantined with the
//! right reason and a detail, each good one (including CMYK, 16-bit, animated,
//! EXIF-rotated, mislabelled, progressive, WebP) is converted correctly, no row is lost,
//! and the output is the same bytes whatever the number of threads. The same corpus as
//! Parquet bytes and as base64 text in JSONL, read by `source.table`, gives the same
//! images and the same reasons.

use datasets::images::rejects::SCHEMA as REJECT;
use datasets::table::{TableReader, shards};
use image::{ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
use polars::prelude::*;
use schemas::source_image::SourceImage;
use stages::images::prepare::{PrepareConfig, QUARANTINE, write_prepared};
use stages::sources::IdRule;
use stages::sources::image_folder::{ImageFolderConfig, write_image_folder};
use stages::sources::table::{TableConfig, TargetSchema, write_table};
use std::collections::BTreeMap;
use std::path::Path;

// ------------------------------------------------------------------ the corpus

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_of(img: &[u8], w: u32, h: u32, color: image::ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img, w, h, color)
        .unwrap();
    out
}

/// `count` colours in vertical stripes, left to right.
fn stripes(w: u32, h: u32, colours: &[[u8; 3]]) -> RgbImage {
    RgbImage::from_fn(w, h, |x, _| {
        Rgb(colours[(x * colours.len() as u32 / w) as usize])
    })
}

fn jpeg_of(
    pixels: &[u8],
    w: u16,
    h: u16,
    color: jpeg_encoder::ColorType,
    setup: impl FnOnce(&mut jpeg_encoder::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = jpeg_encoder::Encoder::new(&mut out, 92);
    setup(&mut e);
    e.encode(pixels, w, h, color).unwrap();
    out
}

/// A minimal EXIF block (TIFF, little-endian) with one tag: orientation.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut e = b"Exif\0\0II*\0".to_vec();
    e.extend_from_slice(&8u32.to_le_bytes()); // first IFD
    e.extend_from_slice(&1u16.to_le_bytes()); // one entry
    e.extend_from_slice(&0x0112u16.to_le_bytes()); // orientation
    e.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    e.extend_from_slice(&1u32.to_le_bytes()); // one value
    e.extend_from_slice(&value.to_le_bytes());
    e.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // padding, next IFD: none
    e
}

/// Replace the IHDR size of a PNG, with a valid CRC: only the header lies.
fn with_declared_size(mut png: Vec<u8>, w: u32, h: u32) -> Vec<u8> {
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const GREEN: [u8; 3] = [0, 160, 0];

/// Write the corpus into `dir`; the expected quarantine reason of each bad file.
fn corpus(dir: &Path) -> BTreeMap<&'static str, &'static str> {
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    let rgb = jpeg_encoder::ColorType::Rgb;

    // Good images.
    let photo = stripes(640, 480, &[RED, GREEN, BLUE]);
    let photo_jpeg = jpeg_of(photo.as_raw(), 640, 480, rgb, |_| {});
    write("photo.jpg", &photo_jpeg);
    write(
        "progressive.jpg",
        &jpeg_of(photo.as_raw(), 640, 480, rgb, |e| e.set_progressive(true)),
    );
    let grey: Vec<u8> = (0..300 * 200).map(|i| (i % 300) as u8 / 2).collect();
    write(
        "grey.jpg",
        &jpeg_of(&grey, 300, 200, jpeg_encoder::ColorType::Luma, |_| {}),
    );
    // Left half transparent: white after preparation.
    let alpha = RgbaImage::from_fn(200, 150, |x, _| {
        if x < 100 {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([0, 0, 255, 255])
        }
    });
    write(
        "alpha.png",
        &png_of(alpha.as_raw(), 200, 150, image::ExtendedColorType::Rgba8),
    );
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(photo.as_raw(), 640, 480, image::ExtendedColorType::Rgb8)
        .unwrap();
    write("lossless.webp", &webp);
    let mut bmp = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut bmp)
        .write_image(
            stripes(100, 80, &[GREEN]).as_raw(),
            100,
            80,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    write("picture.bmp", &bmp);
    // A PNG under a JPEG's name: decoded as what it is.
    write(
        "really_a_png.jpg",
        &png_of(
            stripes(120, 90, &[BLUE]).as_raw(),
            120,
            90,
            image::ExtendedColorType::Rgb8,
        ),
    );
    // CMYK (Adobe, inverted as Photoshop writes it): cyan + magenta = blue.
    let cmyk: Vec<u8> = std::iter::repeat_n([255u8, 255, 0, 0], 160 * 120)
        .flatten()
        .collect();
    write(
        "cmyk.jpg",
        &jpeg_of(&cmyk, 160, 120, jpeg_encoder::ColorType::Cmyk, |_| {}),
    );
    // 16-bit RGB: 0x8080 is 128 at 8 bits, 0x2000 is 32.
    // Samples in native byte order, as the encoder takes them.
    let deep: Vec<u8> = std::iter::repeat_n([0x8080u16, 0x2000, 0xFFFF], 100 * 100)
        .flatten()
        .flat_map(u16::to_ne_bytes)
        .collect();
    write(
        "deep.png",
        &png_of(&deep, 100, 100, image::ExtendedColorType::Rgb16),
    );
    // Animated: a red frame, then a blue one. The first is kept.
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        encoder
            .set_repeat(image::codecs::gif::Repeat::Infinite)
            .unwrap();
        for colour in [RED, BLUE] {
            let frame = RgbaImage::from_pixel(96, 96, Rgba([colour[0], colour[1], colour[2], 255]));
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    write("animated.gif", &gif);
    // Stored 400 × 300, left half red, right half blue, EXIF orientation 6 (rotate 90°
    // clockwise to view): upright it is 300 × 400, red on top, blue below.
    let sideways = stripes(400, 300, &[RED, BLUE]);
    write(
        "rotated.jpg",
        &jpeg_of(sideways.as_raw(), 400, 300, rgb, |e| {
            e.add_app_segment(1, exif_orientation(6)[..].to_vec())
                .unwrap()
        }),
    );

    // Bad ones.
    let mut expected = BTreeMap::new();
    write("truncated.jpg", &photo_jpeg[..photo_jpeg.len() / 2]);
    expected.insert("truncated", "truncated");
    let mut bad_crc = png_of(photo.as_raw(), 640, 480, image::ExtendedColorType::Rgb8);
    // The data intact, the checksum of its first IDAT chunk wrong.
    let idat = bad_crc.windows(4).position(|w| w == b"IDAT").unwrap();
    let len = u32::from_be_bytes(bad_crc[idat - 4..idat].try_into().unwrap()) as usize;
    bad_crc[idat + 4 + len] ^= 0x55;
    write("bad_crc.png", &bad_crc);
    expected.insert("bad_crc", "corrupt");
    write(
        "thin.png",
        &png_of(
            &vec![128u8; 100_000],
            1,
            100_000,
            image::ExtendedColorType::L8,
        ),
    );
    expected.insert("thin", "aspect_ratio");
    let small = png_of(&[0u8; 64 * 64], 64, 64, image::ExtendedColorType::L8);
    write(
        "bomb.png",
        &with_declared_size(small.clone(), 30_000, 30_000),
    );
    expected.insert("bomb", "decompression_bomb");
    write("zero.png", &with_declared_size(small, 0, 64));
    expected.insert("zero", "zero_dimensions");
    write(
        "notes.jpg",
        b"Shopping list: eggs, milk, a camera that writes real JPEGs.\n",
    );
    expected.insert("notes", "mislabelled");
    write("empty.jpg", b"");
    expected.insert("empty", "empty");
    write(
        "tiny.png",
        &png_of(&[9u8; 10 * 10], 10, 10, image::ExtendedColorType::L8),
    );
    expected.insert("tiny", "dimensions_out_of_range");
    write("scan.png", b"II*\0\x08\0\0\0\0\0\0\0\0\0\0\0\0\0");
    expected.insert("scan", "unsupported_format");
    expected
}

const GOOD: &[&str] = &[
    "alpha",
    "animated",
    "cmyk",
    "deep",
    "grey",
    "lossless",
    "photo",
    "picture",
    "progressive",
    "really_a_png",
    "rotated",
];

// ------------------------------------------------------------------ helpers

struct Prepared {
    rows: BTreeMap<String, SourceImage>,
    quarantine: BTreeMap<String, (String, String)>,
}

fn prepare_corpus(
    root: &Path,
    threads: usize,
    out: &str,
) -> (Prepared, BTreeMap<&'static str, &'static str>) {
    let images = root.join("images");
    let expected = if images.exists() {
        BTreeMap::new()
    } else {
        std::fs::create_dir_all(&images).unwrap();
        corpus(&images)
    };
    let source = root.join("source");
    if !source.exists() {
        std::fs::create_dir_all(&source).unwrap();
        let config = ImageFolderConfig {
            path: "images".into(),
            recursive: true,
            caption_key: "caption".into(),
        };
        write_image_folder(&config, root, &source, &()).unwrap();
    }
    (prepare_table(&source, &root.join(out), threads), expected)
}

/// Prepare the `source_image` table in `source` into `out`: every row in one of the
/// two tables.
fn prepare_table(source: &Path, out: &Path, threads: usize) -> Prepared {
    std::fs::create_dir_all(out).unwrap();
    let summary = write_prepared(&PrepareConfig::default(), source, out, threads, &()).unwrap();
    assert_eq!(summary.table.rows + summary.quarantine.rows, 11 + 9);
    let rows = TableReader::open(out)
        .unwrap()
        .rows::<SourceImage>()
        .unwrap()
        .flat_map(|r| r.unwrap())
        .map(|r| (r.id.clone(), r))
        .collect();
    let q = datasets::table::read_shard(&shards(&out.join(QUARANTINE)).unwrap()[0]).unwrap();
    let text = |c: &str| -> Vec<String> {
        q.column(c)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect()
    };
    let quarantine = text("id")
        .into_iter()
        .zip(text("reason").into_iter().zip(text("detail")))
        .collect();
    Prepared { rows, quarantine }
}

fn pixel(row: &SourceImage, x: u32, y: u32) -> [u8; 3] {
    let img = image::load_from_memory(row.image.bytes.as_deref().unwrap())
        .unwrap()
        .to_rgb8();
    assert_eq!(img.dimensions(), (384, 384), "{}", row.id);
    img.get_pixel(x, y).0
}

fn near(got: [u8; 3], want: [u8; 3], tolerance: u8, what: &str) {
    assert!(
        got.iter()
            .zip(want)
            .all(|(g, w)| g.abs_diff(w) <= tolerance),
        "{what}: {got:?}, expected about {want:?}"
    );
}

// ------------------------------------------------------------------ the tests

#[test]
fn hostile_images_are_quarantined_with_their_reason_and_good_ones_converted() {
    let dir = tempfile::tempdir().unwrap();
    let (p, expected) = prepare_corpus(dir.path(), 2, "prepared");

    // Every bad file, with its reason and a detail that says what was found.
    let got: BTreeMap<&str, &str> = p
        .quarantine
        .iter()
        .map(|(id, (r, _))| (id.as_str(), r.as_str()))
        .collect();
    assert_eq!(got, expected);
    let detail = |id: &str| p.quarantine[id].1.as_str();
    assert!(detail("bomb").contains("30000×30000"), "{}", detail("bomb"));
    assert!(detail("thin").contains("1×100000"), "{}", detail("thin"));
    assert!(
        detail("notes").contains("`Shopping lis`"),
        "{}",
        detail("notes")
    );
    assert!(detail("scan").contains("tiff"), "{}", detail("scan"));
    assert!(
        detail("bad_crc").to_lowercase().contains("crc"),
        "{}",
        detail("bad_crc")
    );
    println!("quarantine:");
    for (id, (reason, detail)) in &p.quarantine {
        println!("  {id:<10} {reason:<24} {detail}");
    }

    // Every good file, as a 384 × 384 JPEG with its original recorded.
    assert_eq!(p.rows.keys().map(String::as_str).collect::<Vec<_>>(), GOOD);
    for row in p.rows.values() {
        assert_eq!((row.width, row.height), (Some(384), Some(384)));
        assert!(
            row.image.path.as_deref().unwrap().ends_with(".jpg"),
            "{:?}",
            row.image.path
        );
        let meta: serde_json::Value =
            serde_json::from_str(row.metadata.as_deref().unwrap()).unwrap();
        assert_eq!(meta["original"]["sha256"].as_str().unwrap().len(), 64);
        let _ = pixel(row, 0, 0);
    }
    let original = |id: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(p.rows[id].metadata.as_deref().unwrap()).unwrap()
            ["original"]
            .clone()
    };
    assert_eq!(original("photo")["width"], 640);
    assert_eq!(original("really_a_png")["format"], "png");
    assert_eq!(original("rotated")["orientation"], 6);

    // The centre crop of three stripes is the middle (green) one, edges included.
    near(pixel(&p.rows["photo"], 192, 192), GREEN, 8, "photo centre");
    near(
        pixel(&p.rows["progressive"], 192, 192),
        GREEN,
        8,
        "progressive centre",
    );
    // Transparent on the left: white; opaque blue on the right.
    near(
        pixel(&p.rows["alpha"], 20, 192),
        [255, 255, 255],
        2,
        "transparent half",
    );
    near(pixel(&p.rows["alpha"], 360, 192), BLUE, 6, "opaque half");
    near(
        pixel(&p.rows["cmyk"], 192, 192),
        BLUE,
        6,
        "CMYK cyan + magenta",
    );
    near(
        pixel(&p.rows["deep"], 192, 192),
        [128, 32, 255],
        3,
        "16-bit samples",
    );
    near(
        pixel(&p.rows["animated"], 192, 192),
        RED,
        6,
        "first frame of the GIF",
    );
    // Upright: red on top, blue below (sideways it would be red left, blue right).
    near(
        pixel(&p.rows["rotated"], 192, 40),
        RED,
        8,
        "top after rotation",
    );
    near(
        pixel(&p.rows["rotated"], 192, 344),
        BLUE,
        8,
        "bottom after rotation",
    );
    near(pixel(&p.rows["picture"], 192, 192), GREEN, 6, "BMP");
    near(
        pixel(&p.rows["really_a_png"], 192, 192),
        BLUE,
        6,
        "PNG named .jpg",
    );
}

#[test]
fn output_is_the_same_bytes_for_any_number_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    prepare_corpus(dir.path(), 1, "one");
    prepare_corpus(dir.path(), 3, "three");
    let files = |sub: &str| -> Vec<Vec<u8>> {
        let mut all = shards(&dir.path().join(sub)).unwrap();
        all.extend(shards(&dir.path().join(sub).join(QUARANTINE)).unwrap());
        all.iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    assert_eq!(files("one"), files("three"));
}

#[test]
fn the_quarantine_is_a_reject_table_beside_a_clean_main_table() {
    let dir = tempfile::tempdir().unwrap();
    prepare_corpus(dir.path(), 2, "prepared");
    let out = dir.path().join("prepared");
    // The main table's shards at the top; the quarantine's in its folder, readable
    // by polars with the reject schema's id.
    let scanned = datasets::table::scan(&shards(&out).unwrap())
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(scanned.height(), 11);
    let q = shards(&out.join(QUARANTINE)).unwrap();
    let reader = TableReader::from_files(q.clone());
    assert_eq!(
        reader.arrow_schema().unwrap().metadata()[schemas::SCHEMA_METADATA_KEY],
        REJECT.id().to_string()
    );
    let by_reason = datasets::table::scan(&q)
        .unwrap()
        .group_by([col("reason")])
        .agg([len()])
        .collect()
        .unwrap();
    assert_eq!(by_reason.height(), 9);
}

#[test]
fn the_corpus_as_parquet_bytes_and_as_base64_text_gives_the_same_images() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let (from_files, _) = prepare_corpus(dir.path(), 2, "prepared");
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let ids: Vec<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let tables = dir.path().join("tables");
    std::fs::create_dir_all(&tables).unwrap();
    // Parquet: the image bytes in a binary column.
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("id".into(), ids.clone()),
        Column::new(
            "img".into(),
            bytes.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        ),
    ])
    .unwrap();
    let file = std::fs::File::create(tables.join("corpus.parquet")).unwrap();
    ParquetWriter::new(file).finish(&mut df).unwrap();
    // JSONL: the image bytes as base64 text.
    let lines: String = ids
        .iter()
        .zip(&bytes)
        .map(|(id, b)| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(b);
            format!("{}\n", serde_json::json!({"id": id, "img": b64}))
        })
        .collect();
    std::fs::write(tables.join("corpus.jsonl"), lines).unwrap();

    for name in ["corpus.parquet", "corpus.jsonl"] {
        let source = dir.path().join(format!("{name}.source"));
        std::fs::create_dir_all(&source).unwrap();
        let config = TableConfig {
            path: tables.join(name).display().to_string(),
            format: None,
            schema: TargetSchema::SourceImage,
            columns: [("image".to_string(), "img".to_string())].into(),
            constants: [("source".to_string(), name.to_string())].into(),
            id: IdRule::Column,
        };
        write_table(&config, dir.path(), &source, &()).unwrap();
        let got = prepare_table(&source, &dir.path().join(format!("{name}.prepared")), 2);

        // The same reasons, but for the text file: without its name it claims no
        // format, so it is not mislabelled but of no format decoded here.
        let reasons = |p: &Prepared| -> BTreeMap<String, String> {
            p.quarantine
                .iter()
                .map(|(id, (reason, _))| (id.clone(), reason.clone()))
                .collect()
        };
        let mut expected = reasons(&from_files);
        expected.insert("notes".into(), "unsupported_format".into());
        assert_eq!(reasons(&got), expected, "{name}");
        // The same images, byte for byte, and the same record of each original.
        assert_eq!(
            got.rows.keys().collect::<Vec<_>>(),
            from_files.rows.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (id, row) in &got.rows {
            let want = &from_files.rows[id];
            assert_eq!(row.image.bytes, want.image.bytes, "{name}: {id}");
            assert_eq!(
                row.image.path.as_deref(),
                Some(format!("{id}.jpg").as_str())
            );
            let sha = |r: &SourceImage| -> serde_json::Value {
                serde_json::from_str::<serde_json::Value>(r.metadata.as_deref().unwrap())
                    .unwrap()["original"]["sha256"]
                    .clone()
            };
            assert_eq!(sha(row), sha(want), "{name}: {id}");
            assert_eq!(row.source, name);
        }
    }
}
