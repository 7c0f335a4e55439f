//! The table benchmark: N rationale rows with images written through [`ShardWriter`]
//! and read back through [`TableReader`], beside pyarrow on the same data and
//! compression.
//!
//! The rows have the columns and types of `sft_sample`: an id, the five families of
//! prompt candidates, a rationale of 80 to 120 words, the image struct
//! `{bytes, path}`, 576 image codes, the tokenizer id and an empty provenance list.
//! Each image is `--image-bytes` pseudo-random bytes (incompressible, standing in for a
//! 384x384 JPEG). The binary does not depend on the `schemas` crate, so the rows are
//! built as polars frames and cross to Arrow through [`frames::frame_to_batch`], the
//! path every polars-made table takes to the writer; the columns come out nullable and
//! the shards carry no schema id.
//!
//! What is timed: the write of record batches already in memory (their generation is
//! not timed) into a new folder, until the last shard is closed; then the read of every
//! column of every shard into record batches, each dropped once counted. Both go
//! through the page cache: the writes are not fsynced inside the timing (an fsync of
//! the shards afterwards is timed and printed apart), and the reads find the files in
//! the page cache, where the write left them.
//!
//! The peer is pyarrow (`pip install pyarrow`), run side by side when `python3` (or
//! `--python`) can import it: a script reads our shards into a table (not timed), then
//! times `pq.write_table` of the same rows into as many files of the same row counts,
//! with the same row-group size and compression (zstd at the same level for every
//! column but `image.bytes`, which is uncompressed, PLAIN, without dictionary; the page
//! index written), then `pq.read_table` of its own files, with threads (its default)
//! and without, and `ParquetFile.iter_batches` with our reader's batch size (streamed
//! and dropped batch by batch, as our read is).

use anyhow::{Context, Result, ensure};
use datasets::rng::Rng;
use datasets::table::{ShardOptions, ShardWriter, TableReader, frames};
use polars::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TablesBenchArgs {
    /// Rows to write and read.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Bytes per image (pseudo-random: about a 384x384 JPEG).
    #[arg(long, default_value_t = 45_000)]
    image_bytes: usize,
    /// Work folder (default: a temporary one, removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The Python of the pyarrow peer (default: `python3` on PATH).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Runs of each timed phase, for both tools; the fastest is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

/// Batches are generated untimed, up to this many bytes of Arrow buffers at a time, and
/// written timed; more rows than fit take several rounds (the default is one).
const ROUND_BYTES: usize = 8_000_000_000;
/// Image codes per row: a 24x24 grid, as a 384-pixel image at 16-pixel patches.
const CODES: usize = 576;
/// The pool images are cut from.
const POOL_BYTES: usize = 64 << 20;
/// The pyarrow version the figures in BENCHMARKS.md were taken with.
const PYARROW_PIN: &str = "26.0.1";

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "a", "red", "blue", "green", "small", "large", "wooden", "glass", "metal",
    "cube", "sphere", "cylinder", "cat", "dog", "bird", "table", "chair", "window", "lamp",
    "shadow", "light", "left", "right", "above", "below", "behind", "beside", "front",
    "center", "corner", "background", "foreground", "texture", "surface", "reflection",
    "soft", "sharp", "warm", "cool", "evening", "morning", "sunlight", "scene",
    "composition", "perspective", "camera", "angle", "close", "distant", "three", "two",
    "four", "several", "pairs", "of", "on", "in", "with", "and", "is", "are", "sits",
    "rests", "leans", "stands", "faces", "casts", "holds", "should", "appear", "first",
    "then", "finally", "place", "draw", "render", "keep", "balance", "contrast", "palette",
    "muted", "vivid", "pastel", "grainy", "smooth", "matte", "glossy", "edge", "outline",
    "silhouette", "detail", "fur", "feathers", "leaves", "stone", "river", "mountain",
    "street", "kitchen", "garden",
];
#[rustfmt::skip]
const TAGS: &[&str] = &[
    "counting", "colors", "position", "color_attr", "single_object", "two_object",
    "texture", "style", "scene", "animals",
];

/// The seeded draws of the synthetic rows (the project's SplitMix64).
struct Draws(Rng);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `min` to `min + spread - 1` words.
    fn text(&mut self, min: usize, spread: usize) -> String {
        let n = min + self.below(spread);
        self.words(n)
    }

    fn words(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n * 8);
        for i in 0..n {
            if i > 0 {
                s.push_str(if self.below(11) == 0 { ". " } else { " " });
            }
            s.push_str(WORDS[self.below(WORDS.len())]);
        }
        s.push('.');
        s
    }
}

/// Rows `start..start + n` as a data frame; images are `image_bytes` long windows of
/// `pool` at pseudo-random offsets.
fn generate(start: usize, n: usize, image_bytes: usize, pool: &[u8]) -> Result<DataFrame> {
    let mut rng = Draws(Rng::new(0x5EED ^ start as u64));
    let mut ids = Vec::with_capacity(n);
    let mut short = Vec::with_capacity(n);
    let mut rationales = Vec::with_capacity(n);
    let mut lists: Vec<ListStringChunkedBuilder> =
        ["paraphrases", "tags", "varied_captions", "object_prompts"]
            .iter()
            .map(|name| ListStringChunkedBuilder::new((*name).into(), n, n * 3))
            .collect();
    let mut codes = ListPrimitiveChunkedBuilder::<UInt16Type>::new(
        "image_codes".into(),
        n,
        n * CODES,
        DataType::UInt16,
    );
    let mut images: Vec<&[u8]> = Vec::with_capacity(n);
    let mut row_codes = vec![0u16; CODES];
    for i in start..start + n {
        ids.push(format!("sft-{i:08}"));
        short.push(rng.text(6, 6));
        let paraphrases: Vec<String> = (0..2).map(|_| rng.text(8, 8)).collect();
        lists[0].append_values_iter(paraphrases.iter().map(String::as_str));
        let tags: Vec<&str> = (0..3).map(|_| TAGS[rng.below(TAGS.len())]).collect();
        lists[1].append_values_iter(tags.into_iter());
        let varied = rng.text(15, 10);
        lists[2].append_values_iter(std::iter::once(varied.as_str()));
        let objects: Vec<String> = (0..2).map(|_| rng.text(2, 3)).collect();
        lists[3].append_values_iter(objects.iter().map(String::as_str));
        rationales.push(rng.text(80, 41));
        let at = rng.below(pool.len() - image_bytes);
        images.push(&pool[at..at + image_bytes]);
        for c in row_codes.iter_mut() {
            *c = (rng.next() & 0x3FFF) as u16;
        }
        codes.append_slice(&row_codes);
    }
    let list_series: Vec<Series> = lists.iter_mut().map(|b| b.finish().into_series()).collect();
    let mut prompt_fields = vec![Series::new("short_caption".into(), short)];
    prompt_fields.extend(list_series);
    let prompts = StructChunked::from_series("prompts".into(), n, prompt_fields.iter())?;
    let image_fields = [
        BinaryChunked::from_iter_values("bytes".into(), images.into_iter()).into_series(),
        Series::full_null("path".into(), n, &DataType::String),
    ];
    let image = StructChunked::from_series("image".into(), n, image_fields.iter())?;
    let provenance_type = DataType::Struct(vec![
        Field::new("task".into(), DataType::String),
        Field::new("model".into(), DataType::String),
        Field::new("template".into(), DataType::String),
        Field::new("template_version".into(), DataType::UInt32),
        Field::new("request_key".into(), DataType::String),
    ]);
    let empty = Series::new_empty("".into(), &provenance_type);
    let provenance = Series::new("provenance".into(), [empty]).new_from_index(0, n);
    let df = DataFrame::new(
        n,
        vec![
            Column::new("id".into(), ids),
            prompts.into_series().into(),
            Column::new("rationale".into(), rationales),
            image.into_series().into(),
            codes.finish().into_series().into(),
            Column::new("tokenizer".into(), vec!["patch_vq@3f2a9c"; n]),
            provenance.into(),
        ],
    )?;
    Ok(df)
}

/// The pyarrow peer. argv: our table folder, its output folder, the zstd level, the
/// repetitions, the rows per batch of the streamed read. Prints one JSON object.
const PEER_PY: &str = r#""""pyarrow beside reasongen's `bench tables`: the same rows, compression and layout."""
import glob
import json
import os
import shutil
import sys
import time

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as e:
    print(json.dumps({"missing": str(e)}))
    sys.exit(0)

src, out = sys.argv[1], sys.argv[2]
level, repeat, batch_rows = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ours = sorted(glob.glob(os.path.join(src, "part-*.parquet")))
metas = [pq.ParquetFile(f).metadata for f in ours]
shard_rows = [m.num_rows for m in metas]
group_rows = max(m.row_group(i).num_rows for m in metas for i in range(m.num_row_groups))

# Not timed: reasongen's shards into memory, and pyarrow's names of the leaf columns.
table = pa.concat_tables([pq.read_table(f) for f in ours])
probe = pa.BufferOutputStream()
pq.write_table(table.slice(0, 0), probe)
schema = pq.ParquetFile(pa.BufferReader(probe.getvalue())).schema
leaves = [schema.column(i).path for i in range(len(schema))]
image = "image.bytes"
assert image in leaves, leaves
options = dict(
    row_group_size=group_rows,
    compression={c: ("NONE" if c == image else "ZSTD") for c in leaves},
    compression_level={c: level for c in leaves if c != image},
    use_dictionary=[c for c in leaves if c != image],
    column_encoding={image: "PLAIN"},
    write_page_index=True,
)
arrow_bytes = table.nbytes
files = [os.path.join(out, f"part-{i:05}.parquet") for i in range(len(ours))]


def write():
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    t = time.perf_counter()
    offset = 0
    for path, n in zip(files, shard_rows):
        pq.write_table(table.slice(offset, n), path, **options)
        offset += n
    return time.perf_counter() - t


def fsync():
    t = time.perf_counter()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - t


def read(threads):
    t = time.perf_counter()
    got = pa.concat_tables([pq.read_table(f, use_threads=threads) for f in files])
    secs = time.perf_counter() - t
    assert got.num_rows == sum(shard_rows), (got.num_rows, shard_rows)
    return secs, got.nbytes


def stream():
    """Batch by batch, each dropped once counted, as reasongen's reader is timed."""
    t = time.perf_counter()
    rows = 0
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_rows):
            rows += batch.num_rows
    secs = time.perf_counter() - t
    assert rows == sum(shard_rows), (rows, shard_rows)
    return secs


runs = {"write": [], "fsync": [], "read": [], "read1": [], "stream": []}
for _ in range(repeat):
    runs["write"].append(write())
    runs["fsync"].append(fsync())
    secs, _ = read(False)
    runs["read1"].append(secs)
    secs, read_bytes = read(True)
    runs["read"].append(secs)
    runs["stream"].append(stream())
del table
groups = lambda fs: sum(pq.ParquetFile(f).metadata.num_row_groups for f in fs)
print(json.dumps({
    "version": pa.__version__,
    "arrow_bytes": arrow_bytes,
    "read_arrow_bytes": read_bytes,
    "runs": runs,
    "bytes": sum(os.path.getsize(f) for f in files),
    "files": len(files),
    "row_groups": groups(files),
    "our_row_groups": groups(ours),
    "group_rows": group_rows,
    "threads": pa.cpu_count(),
}))
"#;

/// What the peer printed.
#[derive(serde::Deserialize)]
struct Peer {
    version: String,
    arrow_bytes: u64,
    read_arrow_bytes: u64,
    /// Seconds of each repetition, by phase: write, fsync, read (`read_table`), read1
    /// (the same without threads), stream (`iter_batches`).
    runs: std::collections::BTreeMap<String, Vec<f64>>,
    bytes: u64,
    files: usize,
    row_groups: usize,
    our_row_groups: usize,
    group_rows: usize,
    threads: usize,
}

impl Peer {
    fn runs(&self, phase: &str) -> &[f64] {
        self.runs.get(phase).map_or(&[], Vec::as_slice)
    }
}

/// Run the peer on our table; `None` (and a line saying why) when there is no pyarrow.
fn peer(
    python: &Path,
    work: &Path,
    ours: &Path,
    level: i32,
    repeat: usize,
    batch_rows: usize,
) -> Result<Option<Peer>> {
    let script = work.join("peer_pyarrow.py");
    std::fs::write(&script, PEER_PY)?;
    let skipped = |why: &str| {
        println!(
            "  pyarrow peer skipped: {why} (to compare: `pip install pyarrow=={PYARROW_PIN}`, or --python PATH)"
        );
        Ok(None)
    };
    let out = match Command::new(python)
        .arg(&script)
        .arg(ours)
        .arg(work.join("pyarrow"))
        .arg(level.to_string())
        .arg(repeat.to_string())
        .arg(batch_rows.to_string())
        .output()
    {
        Ok(out) => out,
        Err(e) => return skipped(&format!("cannot run {}: {e}", python.display())),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "the pyarrow peer failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let value: serde_json::Value =
        serde_json::from_str(last).with_context(|| format!("the peer printed {stdout:?}"))?;
    if let Some(missing) = value.get("missing") {
        return skipped(&format!("{} has no pyarrow ({missing})", python.display()));
    }
    Ok(Some(serde_json::from_value(value)?))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// One line of the figures table: rates of the fastest run, and the slowest run's time.
fn line(what: &str, rows: u64, runs: &[f64], bytes: u64) {
    let best = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let worst = runs.iter().copied().fold(0.0, f64::max);
    println!(
        "  {what:<34} {:>9.0} {:>9.0} {:>8.2} {:>8.2}",
        rows as f64 / best,
        mb(bytes) / best,
        best,
        worst
    );
}

/// fsync every file; the seconds it took.
fn fsync(files: &[PathBuf]) -> Result<f64> {
    let t = Instant::now();
    for f in files {
        std::fs::File::open(f)?.sync_all()?;
    }
    Ok(t.elapsed().as_secs_f64())
}

pub fn run(args: TablesBenchArgs) -> Result<ExitCode> {
    ensure!(
        args.rows > 0 && args.repeat > 0,
        "--rows and --repeat must be at least 1"
    );
    let tmp;
    let work = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let ours = work.join("reasongen");
    ensure!(
        !ours.exists() && !work.join("pyarrow").exists(),
        "{} already holds a run of this benchmark",
        work.display()
    );
    let options = ShardOptions::default();
    let chunk = options.row_group_rows;
    println!(
        "tables benchmark: {} rows with the columns of sft_sample (rationales of 80-120 words, 576 image codes), {}-byte images, best of {} runs, folder {}",
        args.rows,
        args.image_bytes,
        args.repeat,
        work.display()
    );
    println!(
        "  images: pseudo-random bytes standing in for 384x384 JPEGs (incompressible), each cut from a {} MiB pool at a random offset",
        POOL_BYTES >> 20
    );
    println!(
        "  layout: the writer's defaults: shards of {} MB, row groups of up to {} rows and 100 MB, zstd level {} except image.bytes (uncompressed, PLAIN, no dictionary)",
        options.target_shard_bytes / 1_000_000,
        chunk,
        options.zstd_level
    );

    let mut rng = Draws(Rng::new(0x1A6E_5EED));
    let mut pool = vec![0u8; POOL_BYTES.max(args.image_bytes + 1)];
    for bytes in pool.chunks_mut(8) {
        let random = rng.next().to_le_bytes();
        bytes.copy_from_slice(&random[..bytes.len()]);
    }
    // Batches from row `start` up to ROUND_BYTES of Arrow buffers: (batches, bytes, next row).
    let round_from = |start: usize| -> Result<(Vec<_>, u64, usize)> {
        let (mut round, mut bytes, mut next) = (Vec::new(), 0, start);
        while next < args.rows && bytes < ROUND_BYTES as u64 {
            let n = chunk.min(args.rows - next);
            let df = generate(next, n, args.image_bytes, &pool)?;
            let batch = frames::frame_to_batch(&df, None)?;
            drop(df);
            for c in batch.columns() {
                bytes += c.to_data().get_slice_memory_size()? as u64;
            }
            round.push(batch);
            next += n;
        }
        Ok((round, bytes, next))
    };

    // Generate (not timed) up to ROUND_BYTES of batches, write them (timed); repeat
    // until all rows are written. Batches that fit in one round are kept for the
    // next runs.
    let mut kept = None;
    let (mut generate_time, mut arrow_bytes, mut rounds, mut batches) = (Duration::ZERO, 0, 0, 0);
    let (mut write_runs, mut read_runs, mut fsync_s) = (Vec::new(), Vec::new(), 0.0);
    let (mut summary, mut read_bytes, mut batch_rows) = (None, (0u64, 0u64), 0);
    for run in 0..args.repeat {
        if ours.exists() {
            std::fs::remove_dir_all(&ours)?;
        }
        std::fs::create_dir(&ours)?;
        let (mut writer, mut write_time, mut next) = (None, Duration::ZERO, 0);
        while next < args.rows {
            let start = next;
            let round = match kept.take() {
                Some(all) => {
                    next = args.rows;
                    all
                }
                None => {
                    let t = Instant::now();
                    let (round, bytes, upto) = round_from(start)?;
                    if run == 0 {
                        generate_time += t.elapsed();
                        arrow_bytes += bytes;
                        rounds += 1;
                        batches += round.len();
                    }
                    next = upto;
                    round
                }
            };
            let t = Instant::now();
            let w =
                writer.get_or_insert_with(|| ShardWriter::new(&ours, round[0].schema(), options));
            for b in &round {
                w.write(b)?;
            }
            write_time += t.elapsed();
            if start == 0 && next == args.rows {
                kept = Some(round);
            }
        }
        let t = Instant::now();
        let s = writer.expect("at least one row").finish()?;
        write_runs.push((write_time + t.elapsed()).as_secs_f64());
        ensure!(s.rows == args.rows as u64, "wrote {} rows", s.rows);
        fsync_s = fsync(&datasets::table::shards(&ours)?)?;
        summary = Some(s);

        let t = Instant::now();
        let reader = TableReader::open(&ours)?;
        // Arrow bytes read: of data, and of buffer capacity.
        let (mut rows_read, mut bytes) = (0u64, (0u64, 0u64));
        for b in reader.batches(None) {
            let b = b?;
            batch_rows = batch_rows.max(b.num_rows());
            rows_read += b.num_rows() as u64;
            for c in b.columns() {
                bytes.0 += c.to_data().get_slice_memory_size()? as u64;
            }
            bytes.1 += b.get_array_memory_size() as u64;
        }
        read_runs.push(t.elapsed().as_secs_f64());
        ensure!(
            rows_read == args.rows as u64,
            "read {rows_read} rows of {}",
            args.rows
        );
        read_bytes = bytes;
    }
    drop(kept);
    let summary = summary.expect("at least one run");
    println!(
        "  generated {batches} batches of up to {chunk} rows, {:.0} MB of Arrow buffers, in {:.1} s (not timed){}",
        mb(arrow_bytes),
        generate_time.as_secs_f64(),
        if rounds > 1 {
            format!("; in {rounds} rounds, each generated then written")
        } else {
            "; all in memory before the timed writes".into()
        }
    );

    let python = args.python.clone().unwrap_or_else(|| "python3".into());
    let peer = peer(
        &python,
        &work,
        &ours,
        options.zstd_level,
        args.repeat,
        batch_rows,
    )?;
    if let Some(p) = &peer {
        println!(
            "  peer: pyarrow {} ({}), {} threads for its reads; its table of our rows holds {:.0} MB of Arrow buffers",
            p.version,
            python.display(),
            p.threads,
            mb(p.arrow_bytes)
        );
    }

    println!(
        "  {:<34} {:>9} {:>9} {:>8} {:>8}   (best run; MB = 10^6 bytes of Parquet files)",
        "", "rows/s", "MB/s", "s", "slowest"
    );
    let rows = args.rows as u64;
    line(
        "write, reasongen ShardWriter",
        rows,
        &write_runs,
        summary.bytes,
    );
    if let Some(p) = &peer {
        line(
            "write, pyarrow pq.write_table",
            rows,
            p.runs("write"),
            p.bytes,
        );
    }
    line(
        "read, reasongen TableReader",
        rows,
        &read_runs,
        summary.bytes,
    );
    if let Some(p) = &peer {
        line("read, pyarrow pq.read_table", rows, p.runs("read"), p.bytes);
        line(
            "read, pyarrow, use_threads=False",
            rows,
            p.runs("read1"),
            p.bytes,
        );
        line(
            &format!("read, pyarrow iter_batches({batch_rows})"),
            rows,
            p.runs("stream"),
            p.bytes,
        );
    }
    println!(
        "  reasongen: {} shards, {:.0} MB of Parquet{}; fsync after the write {fsync_s:.2} s (not in the figures); reads give batches of up to {batch_rows} rows, {:.0} MB of Arrow data ({:.0} MB of buffer capacity)",
        summary.shards,
        mb(summary.bytes),
        peer.as_ref()
            .map(|p| format!(", {} row groups", p.our_row_groups))
            .unwrap_or_default(),
        mb(read_bytes.0),
        mb(read_bytes.1)
    );
    if let Some(p) = &peer {
        println!(
            "  pyarrow:   {} files, {:.0} MB of Parquet, {} row groups of up to {} rows; fsync after the write {:.2} s (not in the figures); read_table gives {:.0} MB of Arrow data",
            p.files,
            mb(p.bytes),
            p.row_groups,
            p.group_rows,
            p.runs("fsync").last().copied().unwrap_or_default(),
            mb(p.read_arrow_bytes)
        );
    }
    println!(
        "  both write to and read from the page cache: no fsync inside the timings, and the reads find the files the writes left there"
    );
    Ok(ExitCode::SUCCESS)
}
