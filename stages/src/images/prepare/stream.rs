//! The streaming of a table through preparation: rows read a batch at a time (a few
//! dozen per thread or 64 MiB of images, whichever comes first), prepared on a pool of
//! `threads` threads in input order, and handed to a thread of their own that writes
//! the main table and the quarantine while the next batch is prepared.

use super::QUARANTINE;
use super::config::PrepareConfig;
use super::row::{Outcome, prepare_row};
use crate::sources::Tracker;
use datasets::images::Reason;
use datasets::images::rejects::{self, Reject};
use datasets::table::{ShardOptions, ShardWriter, TableReader, TableSummary};
use pipeline::StageError;
use rayon::prelude::*;
use schemas::source_image::{SCHEMA, SourceImage};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

/// What a run wrote.
#[derive(Clone, Debug)]
pub struct PrepareSummary {
    pub table: TableSummary,
    pub quarantine: TableSummary,
    /// Quarantined rows by reason.
    pub reasons: BTreeMap<Reason, u64>,
    /// Rows prepared although their name claimed another format.
    pub mislabelled_converted: u64,
}

/// Rows gathered before a batch is prepared: this many per thread …
const ROWS_PER_THREAD: usize = 32;
/// … or this many bytes of input images, whichever comes first.
const BATCH_BYTES: usize = 64 << 20;

/// A prepared batch on its way to the writers.
struct Written {
    kept: Vec<SourceImage>,
    rejects: Vec<Reject>,
}

/// Counts of what the batches held.
#[derive(Default)]
struct Counts {
    reasons: BTreeMap<Reason, u64>,
    mislabelled_converted: u64,
}

impl Counts {
    /// The rows of `outcomes` sorted into kept and quarantined, counted.
    fn sort(&mut self, outcomes: Vec<Outcome>) -> Written {
        let mut batch = Written {
            kept: Vec::with_capacity(outcomes.len()),
            rejects: Vec::new(),
        };
        for outcome in outcomes {
            match outcome {
                Outcome::Kept { row, mislabelled } => {
                    self.mislabelled_converted += mislabelled as u64;
                    batch.kept.push(row);
                }
                Outcome::Quarantined { reject, reason } => {
                    *self.reasons.entry(reason).or_default() += 1;
                    batch.rejects.push(reject);
                }
            }
        }
        batch
    }
}

/// Hand `each` the rows of `reader` in batches of at most `max_rows` rows or about
/// [`BATCH_BYTES`] of image bytes.
fn for_each_batch(
    reader: &TableReader,
    max_rows: usize,
    mut each: impl FnMut(Vec<SourceImage>) -> Result<(), StageError>,
) -> Result<(), StageError> {
    let (mut pending, mut bytes) = (Vec::new(), 0);
    for rows in reader.rows::<SourceImage>()? {
        for row in rows? {
            bytes += row.image.bytes.as_ref().map_or(0, Vec::len);
            pending.push(row);
            if pending.len() >= max_rows || bytes >= BATCH_BYTES {
                each(std::mem::take(&mut pending))?;
                bytes = 0;
            }
        }
    }
    each(pending)
}

/// Write the batches that come until the channel closes.
fn write_all(
    batches: Receiver<Written>,
    mut main: ShardWriter,
    mut quarantine: ShardWriter,
    tracker: &impl Tracker,
) -> Result<(TableSummary, TableSummary), StageError> {
    for batch in batches {
        if !batch.kept.is_empty() {
            main.write(&schemas::to_batch(&batch.kept)?)?;
        }
        if !batch.rejects.is_empty() {
            quarantine.write(&rejects::to_batch(&batch.rejects)?)?;
        }
        tracker.advance((batch.kept.len() + batch.rejects.len()) as u64)?;
    }
    Ok((main.finish()?, quarantine.finish()?))
}

/// Prepare the `source_image` table in `input` into a table in `out_dir` (and its
/// quarantine in `out_dir/quarantine`) on `threads` threads.
pub fn write_prepared(
    config: &PrepareConfig,
    input: &Path,
    out_dir: &Path,
    threads: usize,
    tracker: &(impl Tracker + Sync),
) -> Result<PrepareSummary, StageError> {
    config.check().map_err(StageError::msg)?;
    let settings = config.settings();
    let threads = threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("images-{i}"))
        .build()
        .map_err(|e| StageError::msg(format!("image threads: {e}")))?;
    let reader = TableReader::open(input)?;
    tracker.total(reader.row_count()?, "images");
    let main = ShardWriter::new(
        out_dir,
        Arc::new(SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    let quarantine = rejects::writer(&out_dir.join(QUARANTINE))?;
    let (to_writer, from_preparer) = sync_channel::<Written>(1);
    std::thread::scope(|scope| {
        let writing = scope.spawn(move || write_all(from_preparer, main, quarantine, tracker));
        let mut counts = Counts::default();
        let read = for_each_batch(&reader, ROWS_PER_THREAD * threads, |rows| {
            let outcomes = pool.install(|| {
                rows.into_par_iter()
                    .map(|row| prepare_row(row, &settings))
                    .collect::<Result<Vec<_>, _>>()
            })?;
            // A closed channel means the writer stopped on an error, which `join` gives.
            to_writer
                .send(counts.sort(outcomes))
                .map_err(|_| StageError::msg("the table writer stopped"))
        });
        drop(to_writer);
        let written = writing
            .join()
            .map_err(|_| StageError::msg("the table writer panicked"))?;
        // The writer's error comes first: a failed preparation may only be its echo.
        let (table, quarantine) = written?;
        read?;
        Ok(PrepareSummary {
            table,
            quarantine,
            reasons: counts.reasons,
            mislabelled_converted: counts.mislabelled_converted,
        })
    })
}
