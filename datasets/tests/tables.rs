//! Tables round-trip through shards of any size; bad files are refused with the file
//! named; older schema versions are read or refused by the evolution rules.

use arrow::datatypes::{DataType, Field, Schema};
use datasets::table::{ShardOptions, ShardWriter, TableError, TableReader, shards};
use parquet::file::reader::{FileReader, SerializedFileReader};
use proptest::prelude::*;
use schemas::sft_sample::SftSample;
use schemas::{AugmentedPrompts, ImageData, Row, to_batch};
use std::sync::Arc;

fn sample(i: usize, image_len: usize) -> SftSample {
    SftSample {
        id: format!("row{i}"),
        prompts: AugmentedPrompts {
            short_caption: Some(format!("caption {i}")),
            paraphrases: vec![format!("p{i}"); i % 3],
            tags: vec!["red".into(), "cube".into()],
            varied_captions: vec![],
            object_prompts: vec![format!("obj{i}")],
        },
        rationale: format!("a detailed rationale number {i} {}", "x".repeat(i % 17)),
        image: ImageData::from_bytes((0..image_len).map(|b| (b * 31 + i) as u8).collect(), None),
        image_codes: (!i.is_multiple_of(4)).then(|| (0..(i % 9) as u16).collect()),
        tokenizer: Some("patch_vq@test".into()),
        provenance: vec![],
    }
}

fn write(dir: &std::path::Path, rows: &[SftSample], chunk: usize, options: ShardOptions) {
    let mut w = ShardWriter::new(dir, Arc::new(SftSample::SCHEMA.arrow_schema()), options);
    for part in rows.chunks(chunk.max(1)) {
        w.write(&to_batch(part).unwrap()).unwrap();
    }
    let summary = w.finish().unwrap();
    assert_eq!(summary.rows, rows.len() as u64);
    assert_eq!(summary.schema_id.as_deref(), Some("sft_sample@1"));
}

fn read(dir: &std::path::Path) -> Vec<SftSample> {
    let r = TableReader::open(dir).unwrap().with_batch_rows(7);
    r.rows::<SftSample>()
        .unwrap()
        .flat_map(|b| b.unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Whatever the shard target, row-group size and batch chunking, the rows come back
    /// in order, unchanged.
    #[test]
    fn rows_round_trip_for_any_shard_and_row_group_size(
        n in 0usize..120,
        chunk in 1usize..50,
        row_group_rows in 1usize..40,
        shard_kib in 1u64..64,
        image_len in 0usize..600,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<SftSample> = (0..n).map(|i| sample(i, image_len)).collect();
        let options = ShardOptions { target_shard_bytes: shard_kib * 1024, row_group_rows, zstd_level: 1 };
        write(dir.path(), &rows, chunk, options);
        let files = shards(dir.path()).unwrap();
        prop_assert!(!files.is_empty());
        for f in &files {
            let reader = SerializedFileReader::new(std::fs::File::open(f).unwrap()).unwrap();
            for g in reader.metadata().row_groups() {
                prop_assert!(g.num_rows() as usize <= row_group_rows);
            }
        }
        prop_assert_eq!(read(dir.path()), rows);
    }
}

#[test]
fn shards_follow_the_hugging_face_layout() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<SftSample> = (0..50).map(|i| sample(i, 2000)).collect();
    write(
        dir.path(),
        &rows,
        10,
        ShardOptions {
            target_shard_bytes: 40_000,
            ..Default::default()
        },
    );
    let files = shards(dir.path()).unwrap();
    assert!(files.len() > 1, "small target: several shards");
    let reader = SerializedFileReader::new(std::fs::File::open(&files[0]).unwrap()).unwrap();
    let meta = reader.metadata();
    let kv = meta.file_metadata().key_value_metadata().unwrap();
    let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    assert_eq!(get("reasongen.schema").as_deref(), Some("sft_sample@1"));
    let features: serde_json::Value = serde_json::from_str(&get("huggingface").unwrap()).unwrap();
    assert_eq!(features["info"]["features"]["image"]["_type"], "Image");
    let rg = meta.row_group(0);
    for col in rg.columns() {
        let path = col.column_path().string();
        if path == "image.bytes" {
            assert_eq!(col.compression(), parquet::basic::Compression::UNCOMPRESSED);
            assert!(
                col.dictionary_page_offset().is_none(),
                "no dictionary for image bytes"
            );
        } else if path == "rationale" {
            assert!(matches!(
                col.compression(),
                parquet::basic::Compression::ZSTD(_)
            ));
        }
    }
}

#[test]
fn projection_reads_only_the_named_columns() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<SftSample> = (0..30).map(|i| sample(i, 100)).collect();
    write(dir.path(), &rows, 30, ShardOptions::default());
    let r = TableReader::open(dir.path()).unwrap();
    let batches: Vec<_> = r
        .batches(Some(&["rationale", "id"]))
        .collect::<Result<_, _>>()
        .unwrap();
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["id", "rationale"], "columns in file order");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 30);
    let err = r.batches(Some(&["nope"])).next().unwrap().unwrap_err();
    assert!(err.to_string().contains("no column `nope`"), "{err}");
}

#[test]
fn a_truncated_shard_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<SftSample> = (0..40).map(|i| sample(i, 300)).collect();
    write(dir.path(), &rows, 40, ShardOptions::default());
    let file = shards(dir.path()).unwrap().remove(0);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let r = TableReader::open(dir.path()).unwrap();
    let err = match r.rows::<SftSample>() {
        Err(e) => e,
        Ok(mut it) => it.next().unwrap().unwrap_err(),
    };
    let text = err.to_string();
    assert!(text.contains("part-00000.parquet"), "{text}");
    assert!(text.contains("truncated"), "{text}");
}

#[test]
fn a_table_of_another_schema_is_refused_with_both_names() {
    let dir = tempfile::tempdir().unwrap();
    let rationale = schemas::rationale::Rationale {
        id: "a".into(),
        detailed_caption: "x".into(),
        ..Default::default()
    };
    let mut w = ShardWriter::new(
        dir.path(),
        Arc::new(schemas::rationale::Rationale::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    w.write(&to_batch(&[rationale]).unwrap()).unwrap();
    w.finish().unwrap();
    let err = TableReader::open(dir.path())
        .unwrap()
        .rows::<SftSample>()
        .err()
        .unwrap();
    assert!(matches!(err, TableError::Schema { .. }));
    let text = err.to_string();
    assert!(
        text.contains("part-00000.parquet")
            && text.contains("`rationale@1`")
            && text.contains("`sft_sample`"),
        "{text}"
    );
}

#[test]
fn an_untagged_table_with_the_right_columns_reads() {
    // A table written by another tool: same columns, no schema id.
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<SftSample> = (0..5).map(|i| sample(i, 10)).collect();
    let batch = to_batch(&rows).unwrap();
    let bare = Arc::new(Schema::new(batch.schema().fields().clone()));
    let batch =
        arrow::record_batch::RecordBatch::try_new(bare.clone(), batch.columns().to_vec()).unwrap();
    let mut w = ShardWriter::new(dir.path(), bare, ShardOptions::default());
    w.write(&batch).unwrap();
    w.finish().unwrap();
    assert_eq!(read(dir.path()), rows);
    // ...but a wrong type is named.
    let dir2 = tempfile::tempdir().unwrap();
    let wrong = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let mut w = ShardWriter::new(dir2.path(), wrong, ShardOptions::default());
    w.write(&arrow::record_batch::RecordBatch::new_empty(
        w.schema().clone(),
    ))
    .unwrap();
    w.finish().unwrap();
    let err = TableReader::open(dir2.path())
        .unwrap()
        .rows::<SftSample>()
        .err()
        .unwrap();
    assert!(err.to_string().contains("column `id` is Int64"), "{err}");
}

#[test]
fn polars_scans_the_shards_for_joins_dedup_and_statistics() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let mut rows: Vec<SftSample> = (0..30).map(|i| sample(i, 50)).collect();
    rows.extend((0..10).map(|i| sample(i, 50))); // 10 duplicates of the first ids
    write(
        dir.path(),
        &rows,
        7,
        ShardOptions {
            target_shard_bytes: 4000,
            row_group_rows: 5,
            zstd_level: 1,
        },
    );
    let files = shards(dir.path()).unwrap();
    assert!(files.len() > 1);
    let lf = datasets::table::scan(&files).unwrap();
    let distinct = lf
        .clone()
        .select([col("id").n_unique().alias("n")])
        .collect()
        .unwrap();
    assert_eq!(
        distinct.column("n").unwrap().u32().unwrap().get(0),
        Some(30)
    );
    let dedup = lf
        .clone()
        .unique_stable(Some(cols(["id"])), UniqueKeepStrategy::First)
        .collect()
        .unwrap();
    assert_eq!(dedup.height(), 30);
    let joined = lf
        .clone()
        .select([col("id"), col("rationale")])
        .join(
            dedup.lazy().select([col("id"), col("tokenizer")]),
            [col("id")],
            [col("id")],
            JoinArgs::new(JoinType::Inner),
        )
        .collect()
        .unwrap();
    assert_eq!(joined.height(), 40);
    let lengths = lf
        .select([col("image_codes").list().len().mean().alias("mean_codes")])
        .collect()
        .unwrap();
    assert!(
        lengths
            .column("mean_codes")
            .unwrap()
            .f64()
            .unwrap()
            .get(0)
            .unwrap()
            > 0.0
    );
}
