//! What an evaluator checkout must hold and its Python must import, checked before
//! anything runs; each missing piece named with the command that installs it.

use super::*;

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

/// Every script of every benchmark's checkout, by path.
pub(super) fn all_scripts() -> impl Iterator<Item = &'static str> {
    [GENEVAL_SCRIPTS, DPG_SCRIPTS, T2I_SCRIPTS]
        .into_iter()
        .flatten()
        .map(|s| s.path)
}

fn scripts(b: Benchmark) -> &'static [Script] {
    match b {
        Benchmark::Geneval => GENEVAL_SCRIPTS,
        Benchmark::DpgBench => DPG_SCRIPTS,
        Benchmark::T2iCompbench => T2I_SCRIPTS,
    }
}

/// How to install a benchmark's evaluator, for error messages.
pub(super) fn install_hint(b: Benchmark) -> String {
    format!(
        "install it on a GPU machine with `scripts/install_official_evaluators.sh {} DIR` and set `evaluator = \"DIR\"`",
        b.name()
    )
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

/// The checkout's scripts, each present (else the error says how to install it).
pub(super) fn check_scripts(b: Benchmark, evaluator: &Path) -> Result<Vec<PathBuf>, NotInstalled> {
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
pub(super) fn check_data(
    b: Benchmark,
    config: &OfficialConfig,
    dir: &Path,
) -> Result<(), StageError> {
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

/// The modules the benchmark's scripts import, importable by `python` (one process).
pub(super) async fn check_imports(
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
