//! `images.fetch`: a table of URLs (any schema) in, a `source_image` table of the
//! images fetched out, as img2dataset downloads them and more carefully: per-host
//! concurrency and request rate ([`limiter`]), retries with backoff on 408/429/5xx
//! honouring `Retry-After`, connect, read and whole-image timeouts, a byte cap, a
//! redirect limit ([`get`]), the bytes' own format rather than the server's
//! `Content-Type` ([`sniff`]), and the `X-Robots-Tag` opt-outs ([`optout`]).
//!
//! Every URL ends as exactly one row: an image in the main table (its id, caption,
//! the URL as `source`, the size from its header, and every other input column as
//! JSON `metadata`), or a failure in the table in `failed/` with its reason
//! ([`reason`]) and what happened. Each final outcome is recorded in the item memo as
//! soon as it is known ([`record`]), so that a run killed at any point and run again
//! fetches nothing it had stored; timeouts, broken connections and exhausted retries
//! are not final, and are tried again by the next run. Counters and the output meta
//! give the outcomes by reason, by HTTP status and by host ([`stats`]). The config is
//! in [`config`], the input columns in [`rows`], the run in [`stream`], and a
//! scripted loopback server for tests and the benchmark in [`loopback`].

mod config;
mod get;
mod limiter;
pub mod loopback;
mod optout;
mod reason;
mod record;
mod rows;
mod sniff;
mod stats;
mod stream;

pub use config::FetchConfig;
pub use reason::Reason;
pub use stats::{HostCounts, Stats};
pub use stream::{FAILED, FetchSummary, write_fetched};

use pipeline::{
    Arity, ArtifactKind, ArtifactType, Bindings, InputSpec, Output, OutputDecl, Resources, Stage,
    StageContext, StageError,
};

pub struct FetchImages;

impl Stage for FetchImages {
    type Config = FetchConfig;
    const KIND: &'static str = "images.fetch";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Fetch the images of a table of URLs (per-host limits, retries, timeouts, byte cap, opt-out headers), each URL ending as an image row or a failure row with its reason.";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "urls",
        kinds: &[ArtifactKind::Table],
        schema: None,
        arity: Arity::One,
        doc: "a table with a URL column (and optionally caption and id columns)",
    }];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("source_image"));

    fn resources(config: &FetchConfig) -> Resources {
        Resources {
            threads: config.threads.unwrap_or(4),
            ..Resources::default()
        }
    }

    fn validate(config: &FetchConfig, _bindings: &Bindings) -> Result<(), String> {
        config.check()
    }

    async fn run(&self, config: FetchConfig, ctx: StageContext) -> Result<Output, StageError> {
        let urls = ctx.input("urls")?.clone();
        let memo = ctx.memo(record::NAMESPACE)?;
        tokio::task::spawn_blocking(move || {
            let summary = write_fetched(
                &config,
                &urls.dir,
                &ctx.out_dir,
                Some(&memo),
                ctx.threads,
                &ctx,
            )?;
            for (name, n) in summary.stats.counters() {
                ctx.count(&name, n);
            }
            for line in summary.stats.host_lines() {
                ctx.log(line);
            }
            let mut meta = summary.table.meta();
            if let (Some(meta), serde_json::Value::Object(stats)) =
                (meta.as_object_mut(), summary.stats.meta())
            {
                meta.extend(stats);
            }
            Ok(Output {
                rows: Some(summary.table.rows),
                schema: summary.table.schema_id.clone(),
                meta,
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("images.fetch thread: {e}")))?
    }
}
