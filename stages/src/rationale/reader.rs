//! The input side of an executor: a blocking thread streams the input table batch by
//! batch, turns each row into its request and key, records the keys in row order (one
//! hex line per row in a scratch file, so that the assembly reads them back instead of
//! building every request again), and hands the jobs over a bounded channel: at most a
//! channel's worth of requests exists ahead of the executor.

use super::task::{Task, request};
use datasets::table::TableReader;
use llm::Job;
use llm::request::Shape;
use pipeline::{Digest, StageError};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Start reading `input` (a table folder) into `jobs`, writing the keys to `keys`.
/// The thread returns the number of rows read; it stops early, without error, when
/// the receiver is gone.
pub fn start<T: Task>(
    input: PathBuf,
    shape: Arc<Shape>,
    keys: PathBuf,
    jobs: mpsc::Sender<Job>,
) -> JoinHandle<Result<u64, StageError>> {
    tokio::task::spawn_blocking(move || {
        let reader = TableReader::open(&input)?;
        let file = std::fs::File::create(&keys)
            .map_err(|e| StageError::from(e).context(keys.display()))?;
        let mut out = BufWriter::new(file);
        let mut rows = 0u64;
        for batch in reader.rows::<T::Input>()? {
            for row in batch? {
                let (key, request) = request::<T>(&shape, &row);
                writeln!(out, "{key}").map_err(|e| StageError::from(e).context(keys.display()))?;
                rows += 1;
                if jobs.blocking_send(Job { key, request }).is_err() {
                    return Ok(rows);
                }
            }
        }
        out.flush()
            .map_err(|e| StageError::from(e).context(keys.display()))?;
        Ok(rows)
    })
}

/// The keys a reader recorded, in row order.
pub fn keys(path: &Path) -> Result<impl Iterator<Item = Result<Digest, StageError>>, StageError> {
    let file =
        std::fs::File::open(path).map_err(|e| StageError::from(e).context(path.display()))?;
    let at = path.display().to_string();
    Ok(BufReader::new(file).lines().map(move |line| {
        let line = line.map_err(|e| StageError::from(e).context(&at))?;
        line.parse::<Digest>()
            .map_err(|e| StageError::from(e).context(&at))
    }))
}
