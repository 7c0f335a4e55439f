//! The source stages' readers on files made here: image folders with sidecars, the
//! published ReasonGen-R1-SFT-230k Parquet layout, mapped Parquet/JSONL tables, prompt
//! lists, and the errors for bad lines, truncated files and missing columns.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use datasets::table::TableReader;
use pipeline::Registry;
use polars::prelude::*;
use schemas::rl_prompt::RlPrompt;
use schemas::sft_sample::SftSample;
use schemas::source_image::SourceImage;
use schemas::{Provenance, Row};
use stages::sources::image_folder::{ImageFolderConfig, write_image_folder};
use stages::sources::prompts::{PromptsConfig, write_prompts};
use stages::sources::reasongen_sft::{ReasonGenSftConfig, write_reasongen_sft};
use stages::sources::table::{TableConfig, TargetSchema, write_table};
use stages::sources::{Format, IdRule};
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------- tiny image files

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

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A valid grey PNG of `width` × `height` (8-bit greyscale, one stored deflate block).
fn png(width: u32, height: u32, shade: u8) -> Vec<u8> {
    let mut raw = Vec::new();
    for _ in 0..height {
        raw.push(0); // filter: none
        raw.extend(std::iter::repeat_n(shade, width as usize));
    }
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    zlib.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A valid 1 × 1 GIF.
const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

// ---------------------------------------------------------------- helpers

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

fn rows<R: Row>(dir: &Path) -> Vec<R> {
    let reader = TableReader::open(dir).unwrap();
    let batches: Vec<Vec<R>> = reader.rows::<R>().unwrap().map(Result::unwrap).collect();
    batches.into_iter().flatten().collect()
}

fn write_parquet(path: &Path, mut df: DataFrame) {
    let file = std::fs::File::create(path).unwrap();
    ParquetWriter::new(file).finish(&mut df).unwrap();
}

fn table_config(path: &Path, schema: TargetSchema) -> TableConfig {
    TableConfig {
        path: path.display().to_string(),
        format: None,
        schema,
        columns: BTreeMap::new(),
        constants: BTreeMap::new(),
        id: IdRule::Column,
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn list(items: &[&[&str]]) -> Column {
    let series: Vec<Series> = items
        .iter()
        .map(|v| Series::new("".into(), v.to_vec()))
        .collect();
    Column::new("".into(), series)
}

/// The augmented prompts in the published struct's field order.
fn published_prompts(rows: usize) -> Series {
    let names = |n: &str| (0..rows).map(|i| format!("{n} {i}")).collect::<Vec<_>>();
    let fields = DataFrame::new_infer_height(vec![
        list(&vec![&["cat", "mat"][..]; rows]).with_name("object_prompts".into()),
        list(&vec![&["a cat on a mat"][..]; rows]).with_name("paraphrases".into()),
        Column::new("short_caption".into(), names("short")),
        list(&vec![&["cat"][..]; rows]).with_name("tags".into()),
        list(&vec![&[][..]; rows]).with_name("varied_captions".into()),
    ])
    .unwrap();
    fields.into_struct("augmented_prompts".into()).into_series()
}

// ---------------------------------------------------------------- image folder

#[test]
fn image_folder_reads_bytes_sizes_and_sidecars_in_path_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    let a = png(3, 2, 200);
    write(&root.join("a.png"), &a);
    write(&root.join("a.txt"), "  a grey block \n");
    write(&root.join("c.JPG"), b"not really a jpeg");
    write(&root.join("sub/b.gif"), GIF);
    write(
        &root.join("sub/b.json"),
        r#"{"caption": "a white dot", "aesthetic": 6.5, "url": "http://x/b.gif"}"#,
    );
    write(&root.join("notes.md"), "not an image");
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let config = ImageFolderConfig {
        path: root.display().to_string(),
        recursive: true,
        caption_key: "caption".into(),
    };
    let summary = write_image_folder(&config, tmp.path(), &out, &()).unwrap();
    assert_eq!(summary.rows, 3);
    assert_eq!(summary.schema_id.as_deref(), Some("source_image@1"));

    let got: Vec<SourceImage> = rows(&out);
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "c", "sub/b"]);
    let [a_row, c_row, b_row] = &got[..] else {
        unreachable!()
    };
    assert_eq!(a_row.image.bytes.as_deref(), Some(&a[..]));
    assert_eq!(a_row.image.path.as_deref(), Some("a.png"));
    assert_eq!((a_row.width, a_row.height), (Some(3), Some(2)));
    assert_eq!(a_row.caption.as_deref(), Some("a grey block"));
    assert_eq!(a_row.metadata, None);
    assert_eq!(a_row.source, config.path);
    // An unreadable header leaves the size null; the image is not judged here.
    assert_eq!((c_row.width, c_row.height), (None, None));
    assert_eq!(c_row.caption, None);
    assert_eq!(b_row.image.bytes.as_deref(), Some(GIF));
    assert_eq!((b_row.width, b_row.height), (Some(1), Some(1)));
    assert_eq!(b_row.caption.as_deref(), Some("a white dot"));
    assert_eq!(b_row.aesthetic, Some(6.5));
    let meta: serde_json::Value = serde_json::from_str(b_row.metadata.as_deref().unwrap()).unwrap();
    assert_eq!(meta, serde_json::json!({"url": "http://x/b.gif"}));

    // Not recursive: the sub-folder is left out.
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    let config = ImageFolderConfig {
        recursive: false,
        ..config
    };
    write_image_folder(&config, tmp.path(), &flat, &()).unwrap();
    let ids: Vec<String> = rows::<SourceImage>(&flat)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["a", "c"]);

    // Two images that would share an id are refused, both named.
    write(&root.join("a.jpg"), png(1, 1, 0));
    let again = tmp.path().join("again");
    std::fs::create_dir(&again).unwrap();
    let err = write_image_folder(&config, tmp.path(), &again, &())
        .unwrap_err()
        .to_string();
    assert!(err.contains("a.jpg") && err.contains("a.png"), "{err}");
}

// ---------------------------------------------------------------- ReasonGen-R1-SFT-230k

#[test]
fn reasongen_parquet_reads_as_sft_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (p0, p1, p2) = (png(2, 2, 10), png(4, 1, 20), png(1, 3, 30));

    // File 1: images as base64 text and as a data URL, extra columns as published.
    let first = DataFrame::new_infer_height(vec![
        Column::new("id".into(), ["r0", "r1"]),
        Column::new("brief_caption".into(), ["cat", "dog"]),
        Column::new("detailed_caption".into(), ["A cat on a mat.", "A dog."]),
        published_prompts(2).into_column(),
        Column::new(
            "image".into(),
            [
                STANDARD.encode(&p0),
                format!("data:image/png;base64,{}", STANDARD.encode(&p1)),
            ],
        ),
        Column::new("aesthetic".into(), [6.1, 5.9]),
    ])
    .unwrap();
    write_parquet(&data.join("train-00000-of-00002.parquet"), first);

    // File 2: images as {bytes, path} structs, and a row with an empty id.
    let image = DataFrame::new_infer_height(vec![
        Column::new("bytes".into(), [p2.as_slice()]),
        Column::new("path".into(), ["x.png"]),
    ])
    .unwrap()
    .into_struct("image".into())
    .into_series();
    let second = DataFrame::new_infer_height(vec![
        Column::new("id".into(), [""]),
        Column::new("detailed_caption".into(), ["Three grey rows."]),
        published_prompts(1).into_column(),
        image.into_column(),
    ])
    .unwrap();
    write_parquet(&data.join("train-00001-of-00002.parquet"), second);

    let config = ReasonGenSftConfig {
        path: "data".into(),
        dataset: "Franklin0/ReasonGen-R1-SFT-230k".into(),
    };
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let summary = write_reasongen_sft(&config, tmp.path(), &out, &()).unwrap();
    assert_eq!(summary.rows, 3);
    assert_eq!(summary.schema_id.as_deref(), Some("sft_sample@1"));

    let got: Vec<SftSample> = rows(&out);
    assert_eq!(got[0].id, "r0");
    assert_eq!(got[1].id, "r1");
    assert_eq!(got[0].rationale, "A cat on a mat.");
    assert_eq!(got[0].image.bytes.as_deref(), Some(&p0[..]));
    assert_eq!(got[1].image.bytes.as_deref(), Some(&p1[..]));
    assert_eq!(got[2].image.bytes.as_deref(), Some(&p2[..]));
    assert_eq!(got[2].image.path.as_deref(), Some("x.png"));
    // Prompt families are matched by name, not by position.
    let prompts = &got[1].prompts;
    assert_eq!(prompts.short_caption.as_deref(), Some("short 1"));
    assert_eq!(prompts.object_prompts, ["cat", "mat"]);
    assert_eq!(prompts.paraphrases, ["a cat on a mat"]);
    assert_eq!(prompts.tags, ["cat"]);
    assert!(prompts.varied_captions.is_empty());
    assert!(
        got.iter()
            .all(|r| r.image_codes.is_none() && r.tokenizer.is_none())
    );
    assert_eq!(
        got[0].provenance,
        [Provenance {
            task: "published".into(),
            model: "Franklin0/ReasonGen-R1-SFT-230k".into(),
            template: String::new(),
            template_version: 0,
            request_key: String::new(),
        }]
    );
    // The empty id became a content hash, the same on every read.
    let hashed = got[2].id.clone();
    assert!(hashed.starts_with('h') && hashed.len() == 17, "{hashed}");
    let again = tmp.path().join("again");
    std::fs::create_dir(&again).unwrap();
    write_reasongen_sft(&config, tmp.path(), &again, &()).unwrap();
    assert_eq!(rows::<SftSample>(&again)[2].id, hashed);
}

#[test]
fn reasongen_rows_without_required_values_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("part.parquet");
    let df = DataFrame::new_infer_height(vec![
        Column::new("id".into(), ["r0"]),
        Column::new("image".into(), [STANDARD.encode(png(1, 1, 0))]),
        published_prompts(1).into_column(),
    ])
    .unwrap();
    write_parquet(&file, df);
    let config = ReasonGenSftConfig {
        path: file.display().to_string(),
        dataset: "x".into(),
    };
    let err = write_reasongen_sft(&config, tmp.path(), tmp.path(), &())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("part.parquet") && err.contains("`detailed_caption`"),
        "{err}"
    );

    // Inside the prompts struct: a required list that is null, or absent.
    let image = STANDARD.encode(png(1, 1, 0));
    let line = |prompts: &str| {
        format!(
            "{{\"id\": \"r\", \"detailed_caption\": \"d\", \"image\": \"{image}\", \"augmented_prompts\": {prompts}}}\n"
        )
    };
    let file = tmp.path().join("rows.jsonl");
    let complete = r#"{"short_caption": "s", "paraphrases": ["p"], "tags": [], "varied_captions": [], "object_prompts": []}"#;
    let null_tags = r#"{"short_caption": "s", "paraphrases": ["p"], "tags": null, "varied_captions": [], "object_prompts": []}"#;
    write(&file, line(complete) + &line(null_tags));
    let config = ReasonGenSftConfig {
        path: file.display().to_string(),
        dataset: "x".into(),
    };
    let err = write_reasongen_sft(&config, tmp.path(), tmp.path(), &())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rows.jsonl: line 2") && err.contains("field `tags` is null"),
        "{err}"
    );
    let no_tags =
        r#"{"short_caption": "s", "paraphrases": [], "varied_captions": [], "object_prompts": []}"#;
    write(&file, line(no_tags));
    let err = write_reasongen_sft(&config, tmp.path(), tmp.path(), &())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no field `tags`"), "{err}");
}

// ---------------------------------------------------------------- source.table

#[test]
fn table_maps_columns_constants_and_row_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.jsonl");
    write(
        &file,
        "{\"text\": \"a red cube\", \"tag\": \"colors\"}\n\n{\"text\": \"two cats\"}\n",
    );
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // `text` fills two targets; `tag` comes by name.
    let config = TableConfig {
        columns: map(&[("prompt", "text"), ("metadata", "text")]),
        constants: map(&[("family", "geneval")]),
        id: IdRule::Row,
        ..table_config(&file, TargetSchema::RlPrompt)
    };
    write_table(&config, tmp.path(), &out, &()).unwrap();
    let got: Vec<RlPrompt> = rows(&out);
    assert_eq!(
        got,
        [
            RlPrompt {
                id: "p.jsonl-000000".into(),
                prompt: "a red cube".into(),
                family: "geneval".into(),
                tag: Some("colors".into()),
                metadata: Some("a red cube".into()),
            },
            RlPrompt {
                id: "p.jsonl-000001".into(),
                prompt: "two cats".into(),
                family: "geneval".into(),
                tag: None,
                metadata: Some("two cats".into()),
            },
        ]
    );
}

#[test]
fn table_reads_images_from_binary_base64_and_data_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let (p0, p1, p2) = (png(2, 2, 1), png(3, 3, 2), png(5, 1, 3));
    let dir = tmp.path().join("src");
    write(
        &dir.join("a.jsonl"),
        format!(
            "{{\"id\": \"j0\", \"img\": \"{}\"}}\n{{\"id\": \"j1\", \"img\": \"data:image/png;base64,{}\"}}\n",
            STANDARD.encode(&p0),
            STANDARD.encode(&p1)
        ),
    );
    let df = DataFrame::new_infer_height(vec![
        Column::new("id".into(), ["b0"]),
        Column::new("img".into(), [p2.as_slice()]),
        Column::new("width".into(), [5i64]),
    ])
    .unwrap();
    write_parquet(&dir.join("b.parquet"), df);
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let config = TableConfig {
        columns: map(&[("image", "img")]),
        constants: map(&[("source", "laion")]),
        ..table_config(&dir, TargetSchema::SourceImage)
    };
    write_table(&config, tmp.path(), &out, &()).unwrap();
    let got: Vec<SourceImage> = rows(&out);
    let bytes: Vec<&[u8]> = got
        .iter()
        .map(|r| r.image.bytes.as_deref().unwrap())
        .collect();
    assert_eq!(bytes, [&p0[..], &p1[..], &p2[..]]);
    assert_eq!(
        got[2].width,
        Some(5),
        "int64 width cast to the schema's u32"
    );
    assert_eq!(got[0].width, None);
    assert!(got.iter().all(|r| r.source == "laion"));

    // A cell that is neither base64 nor a data URL: the file, line and column named.
    write(
        &dir.join("c.jsonl"),
        "{\"id\": \"c0\", \"img\": \"bm90\"}\n{\"id\": \"c1\", \"img\": \"%%%\"}\n",
    );
    let err = write_table(&config, tmp.path(), &out, &())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("c.jsonl") && err.contains("line 2") && err.contains("`img` → `image`"),
        "{err}"
    );
}

#[test]
fn a_jsonl_line_that_is_not_json_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.jsonl");
    write(
        &file,
        "{\"prompt\": \"a\", \"family\": \"f\", \"id\": \"1\"}\n{\"prompt\": \"b\", \"family\": \"f\", \"id\": \"2\"}\n{\"prompt\": \"c\",\n",
    );
    let err = write_table(
        &table_config(&file, TargetSchema::RlPrompt),
        tmp.path(),
        tmp.path(),
        &(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bad.jsonl") && err.contains("line 3"), "{err}");

    let prompts = PromptsConfig {
        path: file.display().to_string(),
        family: "f".into(),
        tag: None,
        prompt_key: "prompt".into(),
        tag_key: "tag".into(),
    };
    let err = write_prompts(&prompts, tmp.path(), tmp.path(), &())
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.jsonl") && err.contains("line 3"), "{err}");
}

#[test]
fn a_truncated_parquet_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cut.parquet");
    let df = DataFrame::new_infer_height(vec![
        Column::new("id".into(), ["a", "b"]),
        Column::new("prompt".into(), ["x", "y"]),
        Column::new("family".into(), ["f", "f"]),
    ])
    .unwrap();
    write_parquet(&file, df);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = write_table(
        &table_config(&file, TargetSchema::RlPrompt),
        tmp.path(),
        tmp.path(),
        &(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cut.parquet"), "{err}");
}

#[test]
fn a_missing_required_column_names_column_schema_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.jsonl");
    write(&file, "{\"id\": \"1\", \"text\": \"a cat\"}\n");
    let config = TableConfig {
        constants: map(&[("family", "geneval")]),
        ..table_config(&file, TargetSchema::RlPrompt)
    };
    let err = write_table(&config, tmp.path(), tmp.path(), &())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`prompt`") && err.contains("rl_prompt@1") && err.contains("p.jsonl"),
        "{err}"
    );

    // A required value that is null is named with its line.
    write(
        &file,
        "{\"id\": \"1\", \"prompt\": \"a cat\"}\n{\"id\": \"2\", \"prompt\": null}\n",
    );
    let err = write_table(&config, tmp.path(), tmp.path(), &())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("`prompt`") && err.contains("null"),
        "{err}"
    );

    // A target column the schema does not have is refused before reading.
    let config = TableConfig {
        columns: map(&[("caption", "text")]),
        ..config
    };
    let err = write_table(&config, tmp.path(), tmp.path(), &())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no column `caption`"), "{err}");
}

#[test]
fn an_explicit_format_reads_a_file_with_another_extension() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.json");
    write(
        &file,
        "{\"id\": \"1\", \"prompt\": \"x\", \"family\": \"f\"}\n",
    );
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let config = table_config(&file, TargetSchema::RlPrompt);
    let err = write_table(&config, tmp.path(), &out, &()).unwrap_err();
    assert!(err.to_string().contains("p.json"), "{err}");
    let config = TableConfig {
        format: Some(Format::Jsonl),
        ..config
    };
    assert_eq!(write_table(&config, tmp.path(), &out, &()).unwrap().rows, 1);
}

// ---------------------------------------------------------------- prompts

#[test]
fn prompt_lists_from_txt_and_geneval_jsonl() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("prompts");
    write(
        &dir.join("a.txt"),
        "  a photo of a cat \n\n a photo of a dog\n",
    );
    write(
        &dir.join("b.jsonl"),
        concat!(
            "{\"tag\": \"counting\", \"include\": [{\"class\": \"cat\", \"count\": 3}], \"prompt\": \"a photo of three cats\"}\n",
            "{\"prompt\": \"a photo of a bench\"}\n",
        ),
    );
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let config = PromptsConfig {
        path: "prompts".into(),
        family: "geneval".into(),
        tag: Some("single_object".into()),
        prompt_key: "prompt".into(),
        tag_key: "tag".into(),
    };
    let summary = write_prompts(&config, tmp.path(), &out, &()).unwrap();
    assert_eq!(summary.schema_id.as_deref(), Some("rl_prompt@1"));
    let got: Vec<RlPrompt> = rows(&out);
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "geneval-00000",
            "geneval-00001",
            "geneval-00002",
            "geneval-00003"
        ]
    );
    assert_eq!(got[0].prompt, "a photo of a cat");
    assert_eq!(got[1].tag.as_deref(), Some("single_object"));
    assert_eq!(got[1].metadata, None);
    assert_eq!(got[2].prompt, "a photo of three cats");
    assert_eq!(got[2].tag.as_deref(), Some("counting"));
    let meta: serde_json::Value =
        serde_json::from_str(got[2].metadata.as_deref().unwrap()).unwrap();
    assert_eq!(meta["include"][0]["count"], 3);
    assert_eq!(meta["tag"], "counting");
    assert_eq!(got[3].tag.as_deref(), Some("single_object"));
    assert!(got.iter().all(|r| r.family == "geneval"));

    // A JSONL line without the prompt key is named.
    write(
        &dir.join("b.jsonl"),
        "{\"prompt\": \"x\"}\n{\"text\": \"y\"}\n",
    );
    let err = write_prompts(&config, tmp.path(), &out, &())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b.jsonl") && err.contains("line 2") && err.contains("`prompt`"),
        "{err}"
    );
}

// ---------------------------------------------------------------- registry

#[test]
fn source_stages_are_registered_with_documented_configs() {
    let mut registry = Registry::new();
    stages::register(&mut registry);
    for kind in [
        "source.image_folder",
        "source.table",
        "source.reasongen_sft",
        "source.prompts",
    ] {
        let info = registry
            .infos()
            .into_iter()
            .find(|i| i.kind == kind)
            .unwrap_or_else(|| panic!("{kind} is not registered"));
        assert!(info.inputs.is_empty(), "{kind} is a source");
        let props = info.config_schema["properties"].as_object().unwrap();
        assert!(props.contains_key("path"), "{kind}");
        for (key, p) in props {
            let doc = p["description"].as_str().unwrap_or("");
            assert!(!doc.is_empty(), "{kind}: config key `{key}` has no doc");
        }
    }
}

mod benchmark {
    //! `source.benchmark`: the built-in suites as `rl_prompt` tables, and a wrong
    //! DPG-Bench question file refused with what to do.

    use datasets::table::TableReader;
    use schemas::rl_prompt::RlPrompt;
    use stages::sources::benchmark::{BenchmarkConfig, SuiteName, T2iName, write_benchmark};

    fn table(config: BenchmarkConfig) -> Vec<RlPrompt> {
        let dir = tempfile::tempdir().unwrap();
        write_benchmark(&config, dir.path(), dir.path()).unwrap();
        TableReader::open(dir.path())
            .unwrap()
            .rows::<RlPrompt>()
            .unwrap()
            .flat_map(Result::unwrap)
            .collect()
    }

    fn config(suite: SuiteName) -> BenchmarkConfig {
        BenchmarkConfig {
            suite,
            t2i_files: None,
            dpg_questions: None,
            limit: None,
        }
    }

    #[test]
    fn each_suite_becomes_its_prompts() {
        let g = table(config(SuiteName::Geneval));
        assert_eq!(g.len(), 553);
        assert_eq!(g[0].family, "geneval");
        let record: serde_json::Value =
            serde_json::from_str(g[0].metadata.as_deref().unwrap()).unwrap();
        assert_eq!(record["prompt"].as_str(), Some(g[0].prompt.as_str()));
        assert_eq!(record["tag"].as_str(), g[0].tag.as_deref());
        let long = table(config(SuiteName::GenevalLong));
        assert_eq!((long.len(), long[0].family.as_str()), (553, "geneval_long"));
        assert_eq!(table(config(SuiteName::DpgBench)).len(), 1065);
        let t2i = table(config(SuiteName::T2iCompbench));
        assert_eq!(t2i.len(), 6 * 300, "the paper's six categories");
        assert!(
            t2i[0]
                .metadata
                .as_deref()
                .unwrap()
                .contains("dataset_before_2025-09-03/color_val.txt")
        );
        let current = table(BenchmarkConfig {
            t2i_files: Some(vec![T2iName::Color]),
            limit: Some(5),
            ..config(SuiteName::T2iCompbench)
        });
        assert_eq!(current.len(), 5);
        assert!(
            current[0]
                .metadata
                .as_deref()
                .unwrap()
                .contains("\"dataset/color_val.txt\"")
        );
    }

    #[test]
    fn a_dpg_question_file_of_another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dpg_bench.csv"), "item_id,text\n0,x\n").unwrap();
        let e = write_benchmark(
            &BenchmarkConfig {
                dpg_questions: Some("dpg_bench.csv".into()),
                ..config(SuiteName::DpgBench)
            },
            dir.path(),
            &dir.path().join("out"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("dpg_bench.csv") && e.contains("98457fc9901943f51ff9a30367250fc292533bed"),
            "{e}"
        );
    }
}
