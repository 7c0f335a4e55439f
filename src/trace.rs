//! `reasongen trace SCORE_OR_IMAGE`: the chain from a score or an image back to the
//! data that taught the model ([`eval::trace`]).

use anyhow::{Result, anyhow};
use eval::trace::{TraceQuery, trace as chain};
use pipeline::Store;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TraceArgs {
    /// An eval node's score (`NODE`), one task of it (`NODE:TASK`), or one image it
    /// judged (`NODE#SAMPLE_ID`). NODE may also be an `eval.scores` node or a digest.
    what: String,
    /// Images, SFT samples and rationale rows shown at most (counts are whole).
    #[arg(long, default_value_t = 5)]
    limit: usize,
}

pub fn trace(store: &Path, args: TraceArgs) -> Result<ExitCode> {
    let store = Store::open(store)?;
    let (node, query) = match (args.what.split_once('#'), args.what.split_once(':')) {
        (Some((node, sample)), _) => (
            node,
            TraceQuery {
                sample: Some(sample.to_string()),
                ..TraceQuery::default()
            },
        ),
        (None, Some((node, task))) => (
            node,
            TraceQuery {
                task: Some(task.to_string()),
                ..TraceQuery::default()
            },
        ),
        (None, None) => (args.what.as_str(), TraceQuery::default()),
    };
    let digest = crate::inspect::resolve(&store, node)?;
    let text = chain(
        &store,
        digest,
        &TraceQuery {
            limit: args.limit,
            ..query
        },
    )
    .map_err(|e| anyhow!("{e}"))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
