//! `reasongen plan`'s estimate for an LLM node: its input rows turned into requests
//! (as a run builds them), the ones whose answers the memo holds set aside, and the
//! rest counted: input tokens (expected), answer lengths learned from the answers
//! already in the memo for this node's rows, or else from the ledger of its last run
//! (their least, mean and most), priced from the recipe's table.

use super::stage::ANSWERS_NAMESPACE;
use super::task::{Task, request, shape};
use datasets::table::TableReader;
use llm::answer::Answer;
use llm::config::LlmConfig;
use llm::cost::TokenCounter;
use llm::tables::{LEDGER_DIR, LedgerRow};
use pipeline::StageError;
use pipeline::estimate::{EstimateContext, Range, SpendEstimate};
use std::collections::HashSet;

/// Answer lengths seen: least, sum and most, over `n` answers.
#[derive(Default)]
struct Lengths {
    n: u64,
    sum: u64,
    min: u64,
    max: u64,
}

impl Lengths {
    fn add(&mut self, tokens: u64) {
        self.min = if self.n == 0 {
            tokens
        } else {
            self.min.min(tokens)
        };
        self.max = self.max.max(tokens);
        self.sum += tokens;
        self.n += 1;
    }

    /// Tokens per answer, as a range.
    fn per_answer(&self) -> Range {
        Range {
            low: self.min as f64,
            expected: self.sum as f64 / self.n as f64,
            high: self.max as f64,
        }
    }
}

/// The estimate of the node of task `T` with `config`.
pub fn estimate<T: Task>(
    config: &LlmConfig,
    ctx: &EstimateContext,
) -> Result<SpendEstimate, StageError> {
    let counter = TokenCounter::new(&config.cost, &ctx.recipe_dir).map_err(StageError::msg)?;
    let shape = shape::<T>(config, counter).map_err(StageError::msg)?;
    let memo = ctx.memo(ANSWERS_NAMESPACE)?;
    let table = TableReader::open(&ctx.input(T::INPUTS[0].name)?.dir)?;
    let (mut rows, mut cached) = (0u64, 0u64);
    let (mut input, mut worst_input) = (0u64, 0u64);
    let mut keys = HashSet::new();
    let mut seen = Lengths::default();
    for batch in table.rows::<T::Input>()? {
        for row in batch? {
            rows += 1;
            // A row that cannot become a request fails without being sent.
            let (key, Ok(request)) = request::<T>(&shape, &row) else {
                continue;
            };
            if let Some(answer) = memo.get_json::<Answer>(&key)? {
                cached += 1;
                seen.add(answer.spend.output_tokens);
            } else if keys.insert(key) {
                input += request.input.expected;
                worst_input += request.input.worst;
            }
        }
    }
    let to_send = keys.len() as u64;
    let (per_answer, basis) = lengths(config, ctx, seen)?;
    let output = Range {
        low: per_answer.low * to_send as f64,
        expected: per_answer.expected * to_send as f64,
        high: per_answer.high * to_send as f64,
    };
    let factor = config.price_factor();
    let price = config.price();
    Ok(SpendEstimate {
        model: config.endpoint.model.clone(),
        rows,
        cached,
        to_send,
        input_tokens: Range::exact(input as f64),
        output_tokens: output,
        cost_usd: price.map(|p| Range {
            low: p.usd(input as f64, output.low) * factor,
            expected: p.usd(input as f64, output.expected) * factor,
            high: p.usd(input as f64, output.high) * factor,
        }),
        worst_usd: price
            .zip(config.max_output_tokens())
            .map(|(p, max_out)| p.usd(worst_input as f64, (max_out * to_send) as f64) * factor),
        basis,
    })
}

/// Output tokens per answer, and where that figure comes from: answers in the memo,
/// else the node's last run, else `max_tokens`.
fn lengths(
    config: &LlmConfig,
    ctx: &EstimateContext,
    mut seen: Lengths,
) -> Result<(Range, String), StageError> {
    if seen.n > 0 {
        let n = seen.n;
        return Ok((
            seen.per_answer(),
            format!("answer lengths from the {n} answers in the memo"),
        ));
    }
    if let Some(previous) = &ctx.previous {
        let ledger = previous.dir.join(LEDGER_DIR);
        if ledger.exists() {
            for batch in TableReader::open(&ledger)?.rows::<LedgerRow>()? {
                for row in batch? {
                    if row.status == "answered" {
                        seen.add(row.output_tokens);
                    }
                }
            }
        }
        if seen.n > 0 {
            let n = seen.n;
            return Ok((
                seen.per_answer(),
                format!("answer lengths from the {n} answers of its last run"),
            ));
        }
    }
    Ok(match config.max_output_tokens() {
        Some(max) => (
            Range {
                low: 0.0,
                expected: max as f64,
                high: max as f64,
            },
            format!("no answers to learn lengths from: up to max_tokens ({max}) each"),
        ),
        None => (
            Range::default(),
            "no answers to learn lengths from, and no max_tokens: output unknown".into(),
        ),
    })
}
