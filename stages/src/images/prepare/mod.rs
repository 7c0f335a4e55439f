//! `images.prepare`: a `source_image` table in, the same rows with their images
//! decoded, oriented, converted to RGB, cropped to the centred square, resized to
//! `size` × `size` with Pillow's bicubic filter and re-encoded (JPEG at a quality, or
//! PNG) out; every image that cannot be prepared goes to the quarantine table in the
//! artifact's `quarantine/` folder with its reason and what was found
//! ([`datasets::images::Reason`]). Nothing is lost: each input row is in exactly one of
//! the two tables.
//!
//! Kept rows keep their id, caption, source and aesthetic score; `width` and `height`
//! become the prepared size, the image's path takes the new extension, and the record
//! of the original (format, size as stored, EXIF orientation, bytes, SHA-256) joins the
//! row's metadata under `original` ([`datasets::images::original`]).
//!
//! Images are prepared on `threads` cores a batch at a time, in bounded memory, while a
//! thread of its own writes the previous batch ([`stream`]); rows come out in input
//! order, so the tables are the same bytes for any number of threads. The config is in
//! [`config`], one row's fate in [`row`].

mod config;
mod row;
mod stream;

pub use config::{ImageFormat, PrepareConfig};
pub use stream::{PrepareSummary, write_prepared};

use pipeline::{
    Arity, ArtifactKind, ArtifactType, Bindings, InputSpec, Output, OutputDecl, Resources, Stage,
    StageContext, StageError,
};
use std::collections::BTreeMap;

/// The folder of the quarantine table inside the artifact.
pub const QUARANTINE: &str = "quarantine";

pub struct PrepareImages;

impl Stage for PrepareImages {
    type Config = PrepareConfig;
    const KIND: &'static str = "images.prepare";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Decode, orient, crop and resize images to squares of the model's size (Pillow bicubic), re-encode them, and quarantine the bad ones with a reason.";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "images",
        kinds: &[ArtifactKind::Table],
        schema: Some("source_image"),
        arity: Arity::One,
        doc: "images as a source read them (files, Parquet bytes, base64)",
    }];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("source_image"));

    fn resources(config: &PrepareConfig) -> Resources {
        Resources {
            threads: config.threads.unwrap_or(u32::MAX),
            ..Resources::default()
        }
    }

    fn validate(config: &PrepareConfig, _bindings: &Bindings) -> Result<(), String> {
        config.check()
    }

    async fn run(&self, config: PrepareConfig, ctx: StageContext) -> Result<Output, StageError> {
        let images = ctx.input("images")?.clone();
        tokio::task::spawn_blocking(move || {
            let summary = write_prepared(&config, &images.dir, &ctx.out_dir, ctx.threads, &ctx)?;
            ctx.count("prepared", summary.table.rows);
            ctx.count("quarantined", summary.quarantine.rows);
            for (reason, n) in &summary.reasons {
                ctx.count(&format!("quarantined_{reason}"), *n);
            }
            ctx.count("mislabelled_converted", summary.mislabelled_converted);
            let mut meta = summary.table.meta();
            meta["quarantine"] = serde_json::json!({
                "rows": summary.quarantine.rows,
                "reasons": summary.reasons.iter().map(|(r, n)| (r.name(), *n)).collect::<BTreeMap<_, _>>(),
            });
            Ok(Output {
                rows: Some(summary.table.rows),
                schema: summary.table.schema_id.clone(),
                meta,
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("images.prepare thread: {e}")))?
    }
}
