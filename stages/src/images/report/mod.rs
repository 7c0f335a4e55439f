//! `report.dataset`: a report on a paired dataset that a person would rather look at
//! than read. From the `sft_sample` table (and, when bound, the prepared `source_image`
//! table it came from) it writes:
//!
//! - `index.html` and `report.md`: key figures, rows set aside by reason (from every
//!   reject sub-table of the inputs: `quarantine/`, `unmatched/…`, `dropped/`) with an
//!   example each, the plots, and a grid of sample images with prompts and rationales;
//! - `rationale_tokens.png`: a histogram of rationale lengths in tokens;
//! - `image_sizes.png`: a histogram of the originals' shorter sides (with `images`);
//! - `samples/`: the images shown;
//! - `stats.json`: every figure, for programs.

mod page;
mod samples;
mod stats;

use datasets::images::plot::{Histogram, histogram_png};
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, ResultExt, Stage,
    StageContext, StageError,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Config of `report.dataset`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// The page's title.
    #[serde(default = "default_title")]
    pub title: String,
    /// Samples shown in the grid.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// About how many bars each histogram has.
    #[serde(default = "default_bins")]
    pub bins: usize,
}

fn default_title() -> String {
    "Dataset report".to_string()
}
fn default_samples() -> usize {
    12
}
fn default_bins() -> usize {
    24
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            title: default_title(),
            samples: default_samples(),
            bins: default_bins(),
        }
    }
}

/// The files a report wrote.
#[derive(Clone, Debug)]
pub struct ReportSummary {
    pub samples: u64,
    pub set_aside: u64,
    pub files: Vec<PathBuf>,
}

/// The files being written into the report folder.
struct Folder<'a> {
    dir: &'a Path,
    files: Vec<PathBuf>,
    /// Plot files and their captions.
    plots: Vec<(String, String)>,
}

impl Folder<'_> {
    fn write(&mut self, name: &str, bytes: impl AsRef<[u8]>) -> Result<(), StageError> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).context(path.display())?;
        self.files.push(path);
        Ok(())
    }

    /// A histogram of `values` in about `bins` bars.
    fn plot(
        &mut self,
        name: &str,
        values: &[u64],
        bins: usize,
        title: &str,
        x: &str,
    ) -> Result<(), StageError> {
        let png = histogram_png(&Histogram::of(values, bins), title, x).map_err(StageError::msg)?;
        self.write(name, png)?;
        self.plots
            .push((name.to_string(), format!("{title} ({} rows)", values.len())));
        Ok(())
    }
}

/// Write the report on the samples in `samples_dir` (and the prepared images in
/// `images_dir`, if given) into `out_dir`.
pub fn write_report(
    config: &ReportConfig,
    samples_dir: &Path,
    images_dir: Option<&Path>,
    out_dir: &Path,
) -> Result<ReportSummary, StageError> {
    let mut folder = Folder {
        dir: out_dir,
        files: Vec::new(),
        plots: Vec::new(),
    };
    let (sample_stats, tokens) = stats::samples(samples_dir)?;
    let mut set_aside = stats::set_aside("samples", samples_dir)?;
    folder.plot(
        "rationale_tokens.png",
        &tokens,
        config.bins,
        "Rationale length",
        "tokens (whitespace-separated words)",
    )?;
    let image_stats = match images_dir {
        Some(dir) => {
            set_aside.extend(stats::set_aside("images", dir)?);
            let (image_stats, shorter) = stats::images(dir)?;
            folder.plot(
                "image_sizes.png",
                &shorter,
                config.bins,
                "Original image size",
                "shorter side (pixels)",
            )?;
            Some(image_stats)
        }
        None => None,
    };
    let shown = samples::pick(samples_dir, sample_stats.rows, config.samples, out_dir)?;
    let shown_files = shown.iter().filter_map(|s| s.file.as_ref());
    folder.files.extend(shown_files.map(|f| out_dir.join(f)));
    let page = page::Page {
        title: &config.title,
        samples: &sample_stats,
        images: image_stats.as_ref(),
        set_aside: &set_aside,
        plots: &folder.plots,
        shown: &shown,
    };
    let (html, markdown) = (page::html(&page), page::markdown(&page));
    folder.write("index.html", html)?;
    folder.write("report.md", markdown)?;
    let json = serde_json::json!({
        "samples": sample_stats,
        "images": image_stats,
        "set_aside": set_aside,
    });
    folder.write("stats.json", serde_json::to_vec_pretty(&json)?)?;
    Ok(ReportSummary {
        samples: sample_stats.rows,
        set_aside: set_aside.iter().map(|a| a.rows).sum(),
        files: folder.files,
    })
}

pub struct DatasetReport;

impl Stage for DatasetReport {
    type Config = ReportConfig;
    const KIND: &'static str = "report.dataset";
    const VERSION: u32 = 1;
    const DOC: &'static str = "A report on a paired dataset: counts, rows set aside by reason, rationale-length and image-size histograms, and a grid of samples (HTML and Markdown).";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "samples",
            kinds: &[ArtifactKind::Table],
            schema: Some("sft_sample"),
            arity: Arity::One,
            doc: "the paired dataset (pair.sft, images.tokenize)",
        },
        InputSpec {
            name: "images",
            kinds: &[ArtifactKind::Table],
            schema: Some("source_image"),
            arity: Arity::Optional,
            doc: "the prepared images it was paired from (images.prepare), for original sizes and the quarantine",
        },
    ];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Report));

    async fn run(&self, config: ReportConfig, ctx: StageContext) -> Result<Output, StageError> {
        let samples = ctx.input("samples")?.clone();
        let images = ctx.inputs("images").first().cloned();
        tokio::task::spawn_blocking(move || {
            let summary = write_report(
                &config,
                &samples.dir,
                images.as_ref().map(|i| i.dir.as_path()),
                &ctx.out_dir,
            )?;
            ctx.count("samples", summary.samples);
            ctx.count("set_aside", summary.set_aside);
            Ok(Output {
                rows: None,
                schema: None,
                meta: serde_json::json!({"files": summary.files.len()}),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("report thread: {e}")))?
    }
}
