//! The second pass of every LLM stage: the input table again, in order, with the keys
//! the first pass recorded; each row becomes exactly one output row (its answer from
//! the memo) or one failure row (the executor's failure for its key, or `not_sent`
//! when sending stopped), and one ledger row. Output is a function of the answers in
//! the memo alone, so a resumed run writes the same table as an uninterrupted one.
//! Failures also go to a JSONL file in scratch, for the run's log folder when the
//! policy fails the stage.

use super::reader;
use super::task::Task;
use datasets::table::{ShardOptions, ShardWriter, TableReader, TableSummary};
use llm::answer::{Answer, Spend};
use llm::errors::ErrorClass;
use llm::failure::{Collected, Failure};
use llm::tables::{FAILURES_DIR, FailureRow, LEDGER_DIR, LedgerRow};
use pipeline::memo::Memo;
use pipeline::{Digest, StageError};
use schemas::rationale::Rationale;
use schemas::{Provenance, Row};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

/// Rows buffered per record batch.
const BATCH: usize = 1024;
/// Failures quoted in a stage's error message.
const QUOTED: usize = 5;

/// Where the assembly reads and writes.
pub struct Paths<'a> {
    pub input: &'a Path,
    pub keys: &'a Path,
    pub out: &'a Path,
    /// The failures as JSONL lines.
    pub failures_jsonl: &'a Path,
}

/// What the provenance of every row records besides its key.
pub struct Origin {
    pub model: String,
    pub template: String,
    pub template_version: u32,
}

pub struct Assembled {
    pub summary: TableSummary,
    pub counts: Counts,
}

#[derive(Default)]
pub struct Counts {
    pub rows: u64,
    pub failed: u64,
    pub by_reason: BTreeMap<&'static str, u64>,
    /// The first failures, as `row `id`: reason: message`.
    pub quoted: Vec<String>,
}

/// A table writer that batches rows.
struct Rows<R: Row> {
    writer: ShardWriter,
    buf: Vec<R>,
}

impl<R: Row> Rows<R> {
    fn new(dir: &Path) -> Result<Self, StageError> {
        std::fs::create_dir_all(dir).map_err(|e| StageError::from(e).context(dir.display()))?;
        Ok(Rows {
            writer: ShardWriter::new(
                dir,
                Arc::new(R::SCHEMA.arrow_schema()),
                ShardOptions::default(),
            ),
            buf: Vec::with_capacity(BATCH),
        })
    }

    fn push(&mut self, row: R) -> Result<(), StageError> {
        self.buf.push(row);
        if self.buf.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StageError> {
        if !self.buf.is_empty() {
            self.writer.write(&schemas::to_batch(&self.buf)?)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> Result<TableSummary, StageError> {
        self.flush()?;
        Ok(self.writer.finish()?)
    }
}

/// Write the output, failures and ledger tables of the rows in `paths.input`.
pub fn assemble<T: Task>(
    paths: Paths<'_>,
    memo: &Memo,
    collected: &Collected,
    origin: &Origin,
    redact: &dyn Fn(&str) -> String,
) -> Result<Assembled, StageError> {
    let table = TableReader::open(paths.input)?;
    let mut keys = reader::keys(paths.keys)?;
    let mut main: Rows<Rationale> = Rows::new(paths.out)?;
    let mut failures: Rows<FailureRow> = Rows::new(&paths.out.join(FAILURES_DIR))?;
    let mut ledger: Rows<LedgerRow> = Rows::new(&paths.out.join(LEDGER_DIR))?;
    let jsonl_at = paths.failures_jsonl.display();
    let jsonl = std::fs::File::create(paths.failures_jsonl)
        .map_err(|e| StageError::from(e).context(&jsonl_at))?;
    let mut jsonl = BufWriter::new(jsonl);
    let mut done = Counts::default();
    for batch in table.rows::<T::Input>()? {
        for row in batch? {
            let key: Digest = keys.next().ok_or_else(|| {
                StageError::msg("the input table has more rows than the first pass read")
            })??;
            done.rows += 1;
            let id = T::id(&row).to_string();
            let (outcome, spend) = match memo.get_json::<Answer>(&key)? {
                Some(answer) => {
                    let provenance = Provenance {
                        task: T::NAME.into(),
                        model: origin.model.clone(),
                        template: origin.template.clone(),
                        template_version: origin.template_version,
                        request_key: key.to_hex(),
                    };
                    match T::output(row, answer.content, provenance) {
                        Ok(out) => (Ok(out), answer.spend),
                        Err(why) => (
                            Err(Failure::new(ErrorClass::SchemaMismatch, why)),
                            answer.spend,
                        ),
                    }
                }
                None => {
                    let failure = match (collected.failures.get(&key), &collected.stop) {
                        (Some(f), _) => f.clone(),
                        (None, Some(stop)) => {
                            Failure::new(ErrorClass::NotSent, format!("not sent: {stop}"))
                        }
                        (None, None) => {
                            return Err(StageError::msg(format!(
                                "row `{id}`: no answer and no failure for request {} (was the memo changed during the run?)",
                                key.short()
                            )));
                        }
                    };
                    let spend = failure.spend;
                    (Err(failure), spend)
                }
            };
            let status = match outcome {
                Ok(out) => {
                    main.push(out)?;
                    "answered"
                }
                Err(f) => {
                    let row = FailureRow {
                        id: id.clone(),
                        request_key: key.to_hex(),
                        reason: f.class.as_str().to_string(),
                        message: redact(&f.message),
                        raw: f.raw.as_deref().map(redact),
                        attempts: f.attempts,
                    };
                    serde_json::to_writer(&mut jsonl, &row)
                        .map_err(|e| StageError::from(e).context(&jsonl_at))?;
                    jsonl
                        .write_all(b"\n")
                        .map_err(|e| StageError::from(e).context(&jsonl_at))?;
                    done.failed += 1;
                    *done.by_reason.entry(f.class.as_str()).or_default() += 1;
                    if done.quoted.len() < QUOTED {
                        done.quoted
                            .push(format!("row `{id}`: {}: {}", row.reason, row.message));
                    }
                    failures.push(row)?;
                    "failed"
                }
            };
            ledger.push(ledger_row(id, key, status, spend))?;
        }
    }
    if keys.next().is_some() {
        return Err(StageError::msg(
            "the input table has fewer rows than the first pass read",
        ));
    }
    jsonl
        .flush()
        .map_err(|e| StageError::from(e).context(&jsonl_at))?;
    failures.finish()?;
    ledger.finish()?;
    Ok(Assembled {
        summary: main.finish()?,
        counts: done,
    })
}

fn ledger_row(id: String, key: Digest, status: &str, spend: Spend) -> LedgerRow {
    LedgerRow {
        id,
        request_key: key.to_hex(),
        status: status.to_string(),
        input_tokens: spend.input_tokens,
        output_tokens: spend.output_tokens,
        cost_usd: spend.cost_usd,
    }
}
