//! The run: input rows read a batch at a time, each URL looked up in the memo and
//! otherwise fetched on an HTTP runtime of `threads` threads, with at most a window of
//! URLs (four times `concurrency`) between reading and writing, so memory is bounded
//! by that window and the write buffers, never by the table. Outcomes are written in
//! input order: images to the `source_image` table, failures to the table in
//! `failed/`, each recorded in the memo as soon as it is known (when final).

use super::config::FetchConfig;
use super::get::{Effort, Fetched, Getter, host_of, parse_url};
use super::reason::{Failure, Reason};
use super::record;
use super::rows::{InputRow, check_columns, rows};
use super::stats::Stats;
use crate::sources::Tracker;
use datasets::images::rejects::{self, Reject};
use datasets::table::{ShardOptions, ShardWriter, TableReader, TableSummary};
use pipeline::StageError;
use pipeline::memo::Memo;
use schemas::ImageData;
use schemas::source_image::{SCHEMA, SourceImage};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The folder of the failure table inside the artifact.
pub const FAILED: &str = "failed";

/// Input rows per read batch.
const READ_ROWS: usize = 1024;
/// Rows per written batch …
const WRITE_ROWS: usize = 256;
/// … or this many image bytes, whichever comes first.
const WRITE_BYTES: usize = 64 << 20;

/// What a run wrote and did.
#[derive(Clone, Debug)]
pub struct FetchSummary {
    pub table: TableSummary,
    pub failed: TableSummary,
    pub stats: Stats,
}

/// One URL's outcome.
struct Done {
    row: InputRow,
    host: String,
    outcome: Result<Fetched, Failure>,
    effort: Effort,
    from_memo: bool,
}

/// A URL between reading and writing.
enum Pending {
    Ready(Box<Done>),
    Running(JoinHandle<Result<Done, StageError>>),
}

/// The outcome of `row` from the memo, or a task that fetches it.
fn start(
    row: InputRow,
    config: &FetchConfig,
    getter: &Arc<Getter>,
    memo: Option<&Memo>,
    rt: &tokio::runtime::Runtime,
) -> Result<Pending, StageError> {
    let done = |row, host, outcome, from_memo| {
        Ok(Pending::Ready(Box::new(Done {
            row,
            host,
            outcome,
            effort: Effort::default(),
            from_memo,
        })))
    };
    let url = match row.url.as_deref().map(parse_url) {
        None => {
            let why = Failure::new(Reason::BadUrl, "the row has no URL (null, or not text)");
            return done(row, String::new(), Err(why), false);
        }
        Some(Err(why)) => return done(row, String::new(), Err(why), false),
        Some(Ok(url)) => url,
    };
    let host = host_of(&url);
    let key = record::key(url.as_str(), config);
    if let Some(m) = memo
        && let Some(outcome) = m.get(&key)?.as_deref().and_then(record::decode)
    {
        return done(row, host, outcome, true);
    }
    let (getter, memo) = (getter.clone(), memo.cloned());
    Ok(Pending::Running(rt.spawn(async move {
        let mut effort = Effort::default();
        let outcome = getter.get(&url, &mut effort).await;
        if let Some(m) = memo
            && outcome.as_ref().err().is_none_or(Failure::definitive)
        {
            let value = record::encode(&outcome);
            tokio::task::block_in_place(|| m.put(&key, &value))?;
        }
        Ok(Done {
            row,
            host,
            outcome,
            effort,
            from_memo: false,
        })
    })))
}

/// The writers and what they have been given.
struct Sink<'a, T> {
    images: Vec<SourceImage>,
    image_bytes: usize,
    failures: Vec<Reject>,
    main: ShardWriter,
    failed: ShardWriter,
    stats: Stats,
    tracker: &'a T,
}

impl<T: Tracker> Sink<'_, T> {
    fn take(&mut self, done: Done) -> Result<(), StageError> {
        let Done {
            row,
            host,
            outcome,
            effort,
            from_memo,
        } = done;
        self.stats.requests += effort.requests;
        self.stats.retries += effort.retries;
        self.stats.from_memo += from_memo as u64;
        self.stats
            .add(&host, outcome.as_ref().map(|f| f.bytes.len() as u64));
        match outcome {
            Ok(fetched) => {
                self.image_bytes += fetched.bytes.len();
                let path = format!("{}.{}", row.id, fetched.image.format);
                self.images.push(SourceImage {
                    id: row.id,
                    image: ImageData::from_bytes(fetched.bytes, Some(path)),
                    caption: row.caption,
                    source: row.url.unwrap_or_default(),
                    width: fetched.image.size.map(|s| s.0),
                    height: fetched.image.size.map(|s| s.1),
                    aesthetic: None,
                    metadata: row.metadata,
                });
            }
            Err(failure) => self.failures.push(Reject {
                id: row.id,
                reason: failure.reason.name().to_string(),
                detail: failure.detail,
                path: None,
                source: row.url,
            }),
        }
        self.tracker.advance(1)?;
        if self.images.len() + self.failures.len() >= WRITE_ROWS || self.image_bytes >= WRITE_BYTES
        {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StageError> {
        if !self.images.is_empty() {
            self.main.write(&schemas::to_batch(&self.images)?)?;
            self.images.clear();
            self.image_bytes = 0;
        }
        if !self.failures.is_empty() {
            self.failed.write(&rejects::to_batch(&self.failures)?)?;
            self.failures.clear();
        }
        Ok(())
    }
}

/// Fetch the URLs of the table in `input` into a `source_image` table in `out_dir`
/// and a failure table in `out_dir/failed`, on `threads` threads; `memo` (when given)
/// holds finished URLs across runs.
pub fn write_fetched(
    config: &FetchConfig,
    input: &Path,
    out_dir: &Path,
    memo: Option<&Memo>,
    threads: usize,
    tracker: &impl Tracker,
) -> Result<FetchSummary, StageError> {
    config.check().map_err(StageError::msg)?;
    let reader = TableReader::open(input)?.with_batch_rows(READ_ROWS);
    if !reader.files().is_empty() {
        let schema = reader.arrow_schema()?;
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        check_columns(config, &columns)?;
    }
    tracker.total(reader.row_count()?, "urls");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("images-fetch")
        .enable_all()
        .build()
        .map_err(|e| StageError::msg(format!("HTTP runtime: {e}")))?;
    let getter = Arc::new(Getter::new(config.clone()).map_err(StageError::msg)?);
    let mut sink = Sink {
        images: Vec::new(),
        image_bytes: 0,
        failures: Vec::new(),
        main: ShardWriter::new(
            out_dir,
            Arc::new(SCHEMA.arrow_schema()),
            ShardOptions::default(),
        ),
        failed: rejects::writer(&out_dir.join(FAILED))?,
        stats: Stats::default(),
        tracker,
    };
    let finish = |pending: Pending| -> Result<Done, StageError> {
        match pending {
            Pending::Ready(done) => Ok(*done),
            Pending::Running(task) => rt
                .block_on(task)
                .map_err(|e| StageError::msg(format!("fetch task: {e}")))?,
        }
    };
    let window = (config.concurrency as usize * 4).max(64);
    let mut queue = VecDeque::with_capacity(window);
    let mut position = 0;
    for batch in reader.batches(None) {
        let batch = batch?;
        for row in rows(config, &batch, position)? {
            while queue.len() >= window {
                let done = finish(queue.pop_front().expect("the window is full"))?;
                sink.take(done)?;
            }
            queue.push_back(start(row, config, &getter, memo, &rt)?);
        }
        position += batch.num_rows() as u64;
    }
    while let Some(pending) = queue.pop_front() {
        sink.take(finish(pending)?)?;
    }
    sink.flush()?;
    Ok(FetchSummary {
        table: sink.main.finish()?,
        failed: sink.failed.finish()?,
        stats: sink.stats,
    })
}
