//! `eval.official`: a benchmark's own evaluator, run as a command over an
//! `eval.layout` report, its outputs parsed into the score table (judge kind
//! `official`) and per-image verdicts. What each benchmark runs, in its checkout
//! (`scripts/install_official_evaluators.sh` installs them on a GPU machine):
//!
//! - GenEval: `evaluation/evaluate_images.py IMAGES --outfile results.jsonl
//!   --model-path DETECTOR`, then `evaluation/summary_scores.py results.jsonl`
//!   (its output kept as `summary.txt`); scores from `results.jsonl` as
//!   `summary_scores.py` computes them ([`crate::official::geneval_results`]).
//! - DPG-Bench: ELLA's `dpg_bench/compute_dpg_bench.py --image-root-path IMAGES
//!   --resolution R --pic-num 4 --csv CSV --res-path results.txt`; the score is its
//!   `DPG-Bench score`, the categories its L1/L2 lines ([`crate::official::dpg_results`]).
//! - T2I-CompBench: per category, `BLIP_vqa.py` (colour, shape, texture),
//!   `2D_spatial_eval.py` (spatial), `CLIP_similarity.py` (non-spatial), and for
//!   complex all three with `--complex True` then `3_in_1.py`; each category's score
//!   is the mean `answer` of its `vqa_result.json`.
//!
//! Before anything runs, the node checks that the checkout holds the scripts, that the
//! Python it was given imports what they need, and that the detector or question file
//! is there; each missing piece is named with the command that installs it. The run
//! key covers the scripts' content, the detector and CSV paths, and `env`.

use crate::layout::{Benchmark, FILES_JSONL, IMAGES_DIR, LAYOUT_JSON, LaidFile};
use crate::scores::{self, ScoreContext};
use pipeline::program::{self, Invocation, resolve_program};
use pipeline::store::FileHasher;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, Digest, InputSpec, Output, OutputDecl, ResultExt, Stage,
    StageContext, StageError,
};
use schemars::JsonSchema;
use schemas::ImageData;
use schemas::eval_sample::EvalSample;
use schemas::eval_score::EvalScore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod dpg;
pub mod dpg_results;
mod geneval;
pub mod geneval_results;
mod install;
mod t2i;
pub mod t2i_results;

pub use install::NotInstalled;
use install::{all_scripts, check_data, check_imports, check_scripts, install_hint};

/// Config of `eval.official`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OfficialConfig {
    /// The evaluator's checkout (GenEval's, ELLA's or T2I-CompBench's repository),
    /// relative to the recipe.
    pub evaluator: String,
    /// The Python that runs it (a path, or a name on PATH).
    #[serde(default = "default_python")]
    pub python: String,
    /// GenEval: the folder of the Mask2Former checkpoint (`download_models.sh`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// DPG-Bench: ELLA's `dpg_bench.csv` (checked by its git blob id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpg_questions: Option<String>,
    /// Variables set for the evaluator (e.g. `PYTHONPATH`); part of the run key.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables passed through by name (`CUDA_VISIBLE_DEVICES`, `HF_HOME`).
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// Seconds before each evaluator command is killed; 0 for no limit.
    #[serde(default)]
    pub timeout_secs: u64,
    /// Bootstrap resamples for the intervals.
    #[serde(default = "default_rounds")]
    pub bootstrap_rounds: usize,
}

fn default_python() -> String {
    "python3".into()
}
fn default_rounds() -> usize {
    2000
}

/// The judge as the score table names it.
fn judge_label(b: Benchmark) -> &'static str {
    match b {
        Benchmark::Geneval => {
            "GenEval evaluate_images.py (Mask2Former Swin-S + CLIP ViT-L/14), official"
        }
        Benchmark::DpgBench => "DPG-Bench compute_dpg_bench.py (mPLUG-large VQA), official",
        Benchmark::T2iCompbench => {
            "T2I-CompBench scripts (BLIP-VQA, UniDet, CLIPScore, 3-in-1), official"
        }
    }
}

/// The benchmark a layout report was made for.
fn layout_benchmark(layout: &Value) -> Result<Benchmark, StageError> {
    serde_json::from_value(layout["benchmark"].clone())
        .map_err(|_| StageError::msg(format!("{LAYOUT_JSON} names no benchmark")))
}

/// Run one evaluator command with the node's environment.
async fn run_python(
    ctx: &StageContext,
    config: &OfficialConfig,
    python: &Path,
    cwd: &Path,
    args: Vec<String>,
    label: &str,
) -> Result<program::Logs, StageError> {
    program::run(
        ctx,
        &Invocation {
            name: label,
            program: python,
            args: &args,
            dir: cwd,
            env: &config.env,
            pass_env: &config.pass_env,
            timeout_secs: config.timeout_secs,
            label,
        },
    )
    .await
}

/// The layout's files, by file name relative to its images folder.
fn laid_files(layout_dir: &Path) -> Result<Vec<LaidFile>, StageError> {
    let path = layout_dir.join(FILES_JSONL);
    let text = std::fs::read_to_string(&path).context(path.display())?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| StageError::msg(format!("{} line {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// A verdict row for each sample of `file`, scored `score`.
fn verdicts_of(
    file: &LaidFile,
    benchmark: &str,
    model: &str,
    score: f64,
    details: &Value,
) -> Vec<EvalSample> {
    file.sample_ids
        .iter()
        .enumerate()
        .map(|(i, id)| EvalSample {
            id: id.clone(),
            benchmark: benchmark.into(),
            prompt_id: file.prompt_id.clone(),
            prompt: file.prompt.clone(),
            tag: file.tag.clone(),
            sample: i as u32,
            image: ImageData {
                bytes: None,
                path: Some(file.file.clone()),
            },
            score: Some(score),
            details: Some(details.to_string()),
            model: model.into(),
            ..EvalSample::default()
        })
        .collect()
}

/// One evaluator run: where it runs, on what, for which images.
struct Job<'a> {
    ctx: &'a StageContext,
    config: &'a OfficialConfig,
    python: &'a Path,
    evaluator: &'a Path,
    /// The layout's images folder.
    images: &'a Path,
    files: &'a [LaidFile],
    layout: &'a Value,
    context: &'a ScoreContext,
}

/// Scores and verdicts of one run of an evaluator.
struct Scored {
    rows: Vec<EvalScore>,
    verdicts: Vec<EvalSample>,
    headline: f64,
}

pub struct Official;

impl Stage for Official {
    type Config = OfficialConfig;
    const KIND: &'static str = "eval.official";
    const VERSION: u32 = 1;
    const DOC: &'static str = "A benchmark's official evaluator (GenEval, DPG-Bench, T2I-CompBench) over an eval.layout report; its outputs parsed into the score table.";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "layout",
        kinds: &[ArtifactKind::Report],
        schema: None,
        arity: Arity::One,
        doc: "the images in the benchmark's layout (eval.layout)",
    }];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Report));

    fn externals(
        config: &OfficialConfig,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        let evaluator = pipeline::context::resolve_against(recipe_dir, &config.evaluator);
        let mut out = Vec::new();
        for script in all_scripts() {
            let p = evaluator.join(script);
            if p.is_file() {
                out.push((
                    format!("script {script}"),
                    files.digest(&p).context(p.display())?,
                ));
            }
        }
        if out.is_empty() {
            return Err(StageError::msg(format!(
                "`{}` holds none of GenEval's, ELLA's or T2I-CompBench's evaluator scripts: install one with scripts/install_official_evaluators.sh",
                evaluator.display()
            )));
        }
        if let Some(csv) = &config.dpg_questions {
            let p = pipeline::context::resolve_against(recipe_dir, csv);
            out.push((
                "dpg_questions".into(),
                files.digest(&p).context(p.display())?,
            ));
        }
        Ok(out)
    }

    async fn run(&self, config: OfficialConfig, ctx: StageContext) -> Result<Output, StageError> {
        let layout_input = ctx.input("layout")?.clone();
        let layout_path = layout_input.dir.join(LAYOUT_JSON);
        let layout: Value =
            serde_json::from_slice(&std::fs::read(&layout_path).context(format!(
                "{} (is the input an eval.layout report?)",
                layout_path.display()
            ))?)
            .map_err(|e| StageError::msg(format!("{}: {e}", layout_path.display())))?;
        let benchmark = layout_benchmark(&layout)?;
        let evaluator = pipeline::context::resolve_against(&ctx.recipe_dir, &config.evaluator);
        check_scripts(benchmark, &evaluator)?;
        check_data(benchmark, &config, &ctx.recipe_dir)?;
        let python = resolve_program(&config.python, &ctx.recipe_dir).map_err(|e| {
            StageError::from(NotInstalled::Requirement {
                benchmark: benchmark.name(),
                what: format!("a Python: {e}"),
                hint: install_hint(benchmark),
            })
        })?;
        check_imports(&ctx, &config, benchmark, &python).await?;
        let files = laid_files(&layout_input.dir)?;
        let images = layout_input.dir.join(IMAGES_DIR);
        let context = ScoreContext::from_images_json(&layout)
            .map_err(StageError::msg)?
            .judged_by(judge_label(benchmark), "official");
        let job = Job {
            ctx: &ctx,
            config: &config,
            python: &python,
            evaluator: &evaluator,
            images: &images,
            files: &files,
            layout: &layout,
            context: &context,
        };
        let scored = match benchmark {
            Benchmark::Geneval => geneval::run(&job).await?,
            Benchmark::DpgBench => dpg::run(&job).await?,
            Benchmark::T2iCompbench => t2i::run(&job).await?,
        };
        scores::write(&ctx.out_dir, &scored.rows, scored.verdicts)?;
        let mut md = format!(
            "# {} (official evaluator)\n\nJudge: {}\n\n| task | score | 95% interval | prompts | images |\n| --- | ---: | --- | ---: | ---: |\n",
            benchmark.name(),
            judge_label(benchmark)
        );
        for r in &scored.rows {
            let ci = match (r.ci95_low, r.ci95_high) {
                (Some(lo), Some(hi)) => format!("{lo:.4}–{hi:.4}"),
                _ => String::new(),
            };
            md.push_str(&format!(
                "| {} | {:.4} | {ci} | {} | {} |\n",
                r.task, r.score, r.prompts, r.images
            ));
        }
        std::fs::write(ctx.out_dir.join("report.md"), md).context("report.md")?;
        ctx.log(format!(
            "{} (official): {:.4}",
            benchmark.name(),
            scored.headline
        ));
        Ok(Output {
            rows: None,
            schema: None,
            meta: json!({"benchmark": benchmark.name(), "judge": judge_label(benchmark), "score": scored.headline}),
        })
    }
}
