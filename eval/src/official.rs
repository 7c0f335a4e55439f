//! `eval.official`: a benchmark's own evaluator, run as a command over an
//! `eval.layout` report, its outputs parsed into the score table (judge kind
//! `official`) and per-image verdicts. What each benchmark runs, in its checkout
//! (`scripts/install_official_evaluators.sh` installs them on a GPU machine):
//!
//! - GenEval: `evaluation/evaluate_images.py IMAGES --outfile results.jsonl
//!   --model-path DETECTOR`, then `evaluation/summary_scores.py results.jsonl`
//!   (its output kept as `summary.txt`); scores from `results.jsonl` as
//!   `summary_scores.py` computes them ([`crate::geneval_results`]).
//! - DPG-Bench: ELLA's `dpg_bench/compute_dpg_bench.py --image-root-path IMAGES
//!   --resolution R --pic-num 4 --csv CSV --res-path results.txt`; the score is its
//!   `DPG-Bench score`, the categories its L1/L2 lines ([`crate::dpg_results`]).
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
use crate::{dpg_results, geneval_results};
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

/// A script of an evaluator checkout, and the modules it imports that a user must
/// install.
struct Script {
    path: &'static str,
    needs: &'static [&'static str],
}

const GENEVAL_SCRIPTS: &[Script] = &[
    Script {
        path: "evaluation/evaluate_images.py",
        needs: &["mmdet", "open_clip", "clip_benchmark"],
    },
    Script {
        path: "evaluation/summary_scores.py",
        needs: &["pandas"],
    },
];
const DPG_SCRIPTS: &[Script] = &[Script {
    path: "dpg_bench/compute_dpg_bench.py",
    needs: &["modelscope", "accelerate", "pandas"],
}];
const T2I_SCRIPTS: &[Script] = &[
    Script {
        path: "BLIPvqa_eval/BLIP_vqa.py",
        needs: &["spacy", "torch"],
    },
    Script {
        path: "UniDet_eval/2D_spatial_eval.py",
        needs: &["detectron2", "spacy"],
    },
    Script {
        path: "CLIPScore_eval/CLIP_similarity.py",
        needs: &["torch", "spacy"],
    },
    Script {
        path: "3_in_1_eval/3_in_1.py",
        needs: &[],
    },
];

fn scripts(b: Benchmark) -> &'static [Script] {
    match b {
        Benchmark::Geneval => GENEVAL_SCRIPTS,
        Benchmark::DpgBench => DPG_SCRIPTS,
        Benchmark::T2iCompbench => T2I_SCRIPTS,
    }
}

/// How to install a benchmark's evaluator, for error messages.
fn install_hint(b: Benchmark) -> String {
    format!(
        "install it on a GPU machine with `scripts/install_official_evaluators.sh {} DIR` and set `evaluator = \"DIR\"`",
        b.name()
    )
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

/// Why an evaluator cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum NotInstalled {
    #[error("the official {benchmark} evaluator is not installed: `{missing}` not found; {hint}")]
    Script {
        benchmark: &'static str,
        missing: String,
        hint: String,
    },
    #[error("the official {benchmark} evaluator needs {what}; {hint}")]
    Requirement {
        benchmark: &'static str,
        what: String,
        hint: String,
    },
}

/// The benchmark a layout report was made for.
fn layout_benchmark(layout: &Value) -> Result<Benchmark, StageError> {
    serde_json::from_value(layout["benchmark"].clone())
        .map_err(|_| StageError::msg(format!("{LAYOUT_JSON} names no benchmark")))
}

/// The checkout's scripts, each present (else the error says how to install it).
fn check_scripts(b: Benchmark, evaluator: &Path) -> Result<Vec<PathBuf>, NotInstalled> {
    scripts(b)
        .iter()
        .map(|s| {
            let p = evaluator.join(s.path);
            if p.is_file() {
                Ok(p)
            } else {
                Err(NotInstalled::Script {
                    benchmark: b.name(),
                    missing: p.display().to_string(),
                    hint: install_hint(b),
                })
            }
        })
        .collect()
}

/// The detector folder or question file the benchmark needs, present.
fn check_data(b: Benchmark, config: &OfficialConfig, dir: &Path) -> Result<(), StageError> {
    let need = |what: &str, path: &Option<String>| -> Result<PathBuf, StageError> {
        let p = path.as_deref().ok_or_else(|| NotInstalled::Requirement {
            benchmark: b.name(),
            what: format!("`{what}` set in the node's config"),
            hint: install_hint(b),
        })?;
        Ok(pipeline::context::resolve_against(dir, p))
    };
    match b {
        Benchmark::Geneval => {
            let d = need("detector", &config.detector)?;
            if !d.is_dir() {
                return Err(NotInstalled::Requirement {
                    benchmark: b.name(),
                    what: format!("its detector folder `{}`, which is not there", d.display()),
                    hint: install_hint(b),
                }
                .into());
            }
        }
        Benchmark::DpgBench => {
            let csv = need("dpg_questions", &config.dpg_questions)?;
            datasets::benchmarks::check_dpg_questions(&csv).map_err(StageError::msg)?;
        }
        Benchmark::T2iCompbench => {}
    }
    Ok(())
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

/// The modules the benchmark's scripts import, importable by `python` (one process).
async fn check_imports(
    ctx: &StageContext,
    config: &OfficialConfig,
    b: Benchmark,
    python: &Path,
) -> Result<(), StageError> {
    let mut modules: Vec<&str> = scripts(b)
        .iter()
        .flat_map(|s| s.needs.iter().copied())
        .collect();
    modules.sort_unstable();
    modules.dedup();
    let code = format!(
        "import importlib.util, sys\nmissing = [m for m in {modules:?} if importlib.util.find_spec(m) is None]\nprint(' '.join(missing))\nsys.exit(3 if missing else 0)"
    );
    match run_python(
        ctx,
        config,
        python,
        &ctx.scratch_dir,
        vec!["-c".into(), code],
        "imports",
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(_) => {
            let out =
                std::fs::read_to_string(ctx.log_dir().join(format!("{}.imports.stdout", ctx.node)))
                    .unwrap_or_default();
            Err(NotInstalled::Requirement {
                benchmark: b.name(),
                what: format!(
                    "Python modules that `{}` cannot import: {}",
                    python.display(),
                    if out.trim().is_empty() {
                        "(it did not run)"
                    } else {
                        out.trim()
                    }
                ),
                hint: install_hint(b),
            }
            .into())
        }
    }
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

async fn geneval(job: &Job<'_>) -> Result<Scored, StageError> {
    let Job {
        ctx,
        config,
        python,
        evaluator,
        images,
        files,
        context,
        ..
    } = *job;
    let detector = pipeline::context::resolve_against(
        &ctx.recipe_dir,
        config.detector.as_deref().unwrap_or_default(),
    );
    let results = ctx.out_dir.join("results.jsonl");
    let arg = |p: &Path| p.display().to_string();
    run_python(
        ctx,
        config,
        python,
        evaluator,
        vec![
            arg(&evaluator.join("evaluation/evaluate_images.py")),
            arg(images),
            "--outfile".into(),
            arg(&results),
            "--model-path".into(),
            arg(&detector),
        ],
        "evaluate_images",
    )
    .await?;
    let summary = run_python(
        ctx,
        config,
        python,
        evaluator,
        vec![
            arg(&evaluator.join("evaluation/summary_scores.py")),
            arg(&results),
        ],
        "summary_scores",
    )
    .await?;
    std::fs::copy(&summary.stdout, ctx.out_dir.join("summary.txt")).context("summary.txt")?;
    let text = std::fs::read_to_string(&results).context(results.display())?;
    let lines = geneval_results::parse(&text).map_err(StageError::msg)?;
    let scores = geneval_results::score(&lines, config.bootstrap_rounds, 0);
    let by_file: BTreeMap<&str, &LaidFile> = files.iter().map(|f| (f.file.as_str(), f)).collect();
    let mut verdicts = Vec::new();
    for l in &lines {
        let relative = geneval_results::relative_file(&l.filename, images);
        let f = by_file.get(relative.as_str()).ok_or_else(|| {
            StageError::msg(format!(
                "results.jsonl names `{}`, which the layout did not write",
                l.filename
            ))
        })?;
        verdicts.extend(verdicts_of(
            f,
            &context.benchmark,
            &context.model,
            f64::from(u8::from(l.correct)),
            &json!({"correct": l.correct, "reason": l.reason, "tag": l.tag}),
        ));
    }
    Ok(Scored {
        rows: geneval_results::rows(&scores, context),
        headline: scores.overall,
        verdicts,
    })
}

async fn dpg(job: &Job<'_>) -> Result<Scored, StageError> {
    let Job {
        ctx,
        config,
        python,
        evaluator,
        images,
        files,
        layout,
        context,
    } = *job;
    let csv = pipeline::context::resolve_against(
        &ctx.recipe_dir,
        config.dpg_questions.as_deref().unwrap_or_default(),
    );
    let results = ctx.out_dir.join("dpg_results.txt");
    let arg = |p: &Path| p.display().to_string();
    run_python(
        ctx,
        config,
        python,
        evaluator,
        vec![
            arg(&evaluator.join("dpg_bench/compute_dpg_bench.py")),
            "--image-root-path".into(),
            arg(images),
            "--resolution".into(),
            layout["resolution"].as_u64().unwrap_or(384).to_string(),
            "--pic-num".into(),
            "4".into(),
            "--csv".into(),
            arg(&csv),
            "--res-path".into(),
            arg(&results),
        ],
        "compute_dpg_bench",
    )
    .await?;
    let text = std::fs::read_to_string(&results).context(results.display())?;
    let parsed = dpg_results::parse(&text).map_err(StageError::msg)?;
    let by_item: BTreeMap<String, &LaidFile> = files
        .iter()
        .map(|f| (f.file.trim_end_matches(".png").to_string(), f))
        .collect();
    let mut verdicts = Vec::new();
    for img in &parsed.images {
        let f = by_item.get(&img.item).ok_or_else(|| {
            StageError::msg(format!(
                "the DPG results name `{}`, which the layout did not write",
                img.item
            ))
        })?;
        for (v, crop) in verdicts_of(
            f,
            &context.benchmark,
            &context.model,
            img.score,
            &Value::Null,
        )
        .into_iter()
        .zip(&img.crops)
        {
            verdicts.push(EvalSample {
                score: Some(*crop),
                details: Some(json!({"crop_score": crop, "grid_score": img.score}).to_string()),
                ..v
            });
        }
    }
    let rows = dpg_results::rows(&parsed, context, config.bootstrap_rounds);
    Ok(Scored {
        headline: parsed.score,
        rows,
        verdicts,
    })
}

/// The T2I-CompBench metric of a category: (script, extra args, result file).
fn t2i_metric(
    category: &str,
) -> Option<Vec<(&'static str, &'static [&'static str], &'static str)>> {
    const BLIP: (&str, &[&str], &str) = (
        "BLIPvqa_eval/BLIP_vqa.py",
        &[],
        "annotation_blip/vqa_result.json",
    );
    Some(match category {
        "color" | "shape" | "texture" => vec![BLIP],
        "spatial" => vec![(
            "UniDet_eval/2D_spatial_eval.py",
            &[],
            "labels/annotation_obj_detection_2d/vqa_result.json",
        )],
        "non_spatial" => vec![(
            "CLIPScore_eval/CLIP_similarity.py",
            &[],
            "annotation_clip/vqa_result.json",
        )],
        "complex" => vec![
            BLIP,
            (
                "UniDet_eval/2D_spatial_eval.py",
                &["--complex", "True"],
                "labels/annotation_obj_detection_2d/vqa_result.json",
            ),
            (
                "CLIPScore_eval/CLIP_similarity.py",
                &["--complex", "True"],
                "annotation_clip/vqa_result.json",
            ),
            (
                "3_in_1_eval/3_in_1.py",
                &[],
                "annotation_3_in_1/vqa_result.json",
            ),
        ],
        _ => return None,
    })
}

async fn t2i(job: &Job<'_>) -> Result<Scored, StageError> {
    let Job {
        ctx,
        config,
        python,
        evaluator,
        images,
        files,
        context,
        ..
    } = *job;
    let mut categories: Vec<String> = files
        .iter()
        .filter_map(|f| f.file.split('/').next().map(str::to_string))
        .collect();
    categories.dedup();
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    let mut means = Vec::new();
    for category in &categories {
        let steps = t2i_metric(category).ok_or_else(|| {
            StageError::msg(format!(
                "T2I-CompBench has no metric for category `{category}`"
            ))
        })?;
        // The scripts write next to the images: they run on a copy whose `samples/`
        // links to the layout's.
        let work = ctx.scratch_dir.join(category);
        std::fs::create_dir_all(&work).context(work.display())?;
        let samples = images.join(category).join("samples");
        let link = work.join("samples");
        if !link.exists() {
            std::os::unix::fs::symlink(&samples, &link).context(link.display())?;
        }
        let mut result = None;
        for (script, extra, out) in steps {
            let path = evaluator.join(script);
            let mut args = vec![
                path.display().to_string(),
                format!("--outpath={}/", work.display()),
            ];
            if script.starts_with("BLIP") {
                args = vec![
                    path.display().to_string(),
                    format!("--out_dir={}/", work.display()),
                ];
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            let cwd = path.parent().expect("a script in a folder");
            run_python(
                ctx,
                config,
                python,
                cwd,
                args,
                &format!("{category}.{}", out.split('/').next().unwrap_or("")),
            )
            .await?;
            result = Some(work.join(out));
        }
        let result = result.expect("every category runs a script");
        let text = std::fs::read_to_string(&result).context(result.display())?;
        let answers = crate::t2i_results::parse(&text)
            .map_err(|e| StageError::msg(format!("{}: {e}", result.display())))?;
        let dest = ctx.out_dir.join(format!("{category}_vqa_result.json"));
        std::fs::write(&dest, &text).context(dest.display())?;
        let mine: Vec<&LaidFile> = files
            .iter()
            .filter(|f| f.file.starts_with(&format!("{category}/")))
            .collect();
        let (row, scored) = crate::t2i_results::category(
            category,
            &answers,
            &mine,
            context,
            config.bootstrap_rounds,
        )
        .map_err(StageError::msg)?;
        means.push(row.score);
        rows.push(row);
        verdicts.extend(scored);
    }
    let headline = means.iter().sum::<f64>() / means.len().max(1) as f64;
    Ok(Scored {
        rows,
        verdicts,
        headline,
    })
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
        for script in [GENEVAL_SCRIPTS, DPG_SCRIPTS, T2I_SCRIPTS]
            .into_iter()
            .flatten()
        {
            let p = evaluator.join(script.path);
            if p.is_file() {
                out.push((
                    format!("script {}", script.path),
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
            Benchmark::Geneval => geneval(&job).await?,
            Benchmark::DpgBench => dpg(&job).await?,
            Benchmark::T2iCompbench => t2i(&job).await?,
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
