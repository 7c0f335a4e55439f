//! `eval.report` end to end through the engine: two models' images of shapes-world
//! prompts (one right, one wrong) judged by `eval.shapes_geneval`, collected by
//! `eval.scores`, with a training run's metrics and a dataset card, make one page; the
//! page holds its scores, judges, image grids, curves and card, escapes user text, and
//! reaches nothing outside itself. Headless Chromium (`$REASONGEN_CHROMIUM`, or
//! /usr/bin/chromium) opens it: a screenshot is taken, no console message is logged,
//! and its DOM holds the grids and tables. Without Chromium those tests are skipped
//! with a reason, unless `REASONGEN_REQUIRE_CHROMIUM` is set (`.ci/run`).

use super::harness::{Ran, run_recipe, write_rows};
use datasets::shapes::{HeldOut, SceneGenerator, TaskCounts, prompt_set, render_png};
use pipeline::{
    ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, Stage, StageContext, StageError,
};
use schemas::ImageData;
use schemas::eval_sample::EvalSample;
use schemas::rl_prompt::RlPrompt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Default, Serialize, Deserialize, schemars::JsonSchema)]
struct Which {
    #[serde(default)]
    wrong: bool,
}

/// The prompt text every sample of the first prompt carries: markup a page must escape.
const PLANTED: &str = "a photo of <b>two</b> & \"squares\"";

/// Shapes-world prompts with their GenEval-style records.
fn prompts() -> Vec<RlPrompt> {
    prompt_set(5, &TaskCounts::uniform(2), &HeldOut::default())
        .iter()
        .enumerate()
        .map(|(i, p)| RlPrompt {
            id: format!("shapes-{i:05}"),
            prompt: p.metadata.prompt.clone(),
            family: "shapes".into(),
            tag: Some(p.metadata.tag.tag().to_string()),
            metadata: Some(p.metadata.to_json()),
        })
        .collect()
}

/// Two images per prompt: its own scene, or (`wrong`) the scene of the next prompt.
fn samples(wrong: bool) -> Vec<EvalSample> {
    let prompts = prompts();
    let generated = prompt_set(5, &TaskCounts::uniform(2), &HeldOut::default());
    let mut scenes = SceneGenerator::new(3);
    let mut out = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let drawn = if wrong { (i + 1) % prompts.len() } else { i };
        for k in 0..2 {
            let png = render_png(
                &scenes.for_metadata(&generated[drawn].metadata).unwrap(),
                64,
            );
            out.push(EvalSample {
                id: format!("{}-{k}", p.id),
                benchmark: "shapes_geneval".into(),
                prompt_id: p.id.clone(),
                prompt: if i == 0 {
                    PLANTED.into()
                } else {
                    p.prompt.clone()
                },
                tag: p.tag.clone(),
                sample: k,
                rationale: Some(format!("Top left: <i>{}</i>.", p.prompt)),
                image: ImageData::from_bytes(png.unwrap(), None),
                ..EvalSample::default()
            });
        }
    }
    out
}

struct Prompts;

impl Stage for Prompts {
    type Config = Which;
    const KIND: &'static str = "test.prompts";
    const VERSION: u32 = 1;
    const DOC: &'static str = "the test's prompts";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("rl_prompt"));

    async fn run(&self, _: Which, ctx: StageContext) -> Result<Output, StageError> {
        write_rows(&prompts(), &ctx)
    }
}

struct Samples;

impl Stage for Samples {
    type Config = Which;
    const KIND: &'static str = "test.samples";
    const VERSION: u32 = 1;
    const DOC: &'static str = "the test's images, right or wrong";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("eval_sample"));

    async fn run(&self, which: Which, ctx: StageContext) -> Result<Output, StageError> {
        write_rows(&samples(which.wrong), &ctx)
    }
}

/// A model folder with a training run's metrics and held-out scores.
struct Trained;

impl Stage for Trained {
    type Config = Which;
    const KIND: &'static str = "test.trained";
    const VERSION: u32 = 1;
    const DOC: &'static str = "a training run's metrics";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Model));

    async fn run(&self, _: Which, ctx: StageContext) -> Result<Output, StageError> {
        let mut metrics = String::new();
        for step in 1..=50 {
            let loss = 3.0 / f64::from(step);
            metrics += &format!("{}\n", json!({"step": step, "loss": loss, "lr": 1e-3}));
        }
        std::fs::write(ctx.out_dir.join("metrics.jsonl"), metrics)?;
        let evals = [(25, 0.3), (50, 0.6)].map(|(step, s)| {
            json!({"step": step, "overall": s, "overall_ci95": [s - 0.1, s + 0.1]}).to_string()
        });
        std::fs::write(ctx.out_dir.join("eval.jsonl"), evals.join("\n"))?;
        Ok(Output {
            rows: None,
            schema: None,
            meta: json!({}),
        })
    }
}

/// A release folder with its dataset card.
struct Released;

impl Stage for Released {
    type Config = Which;
    const KIND: &'static str = "test.released";
    const VERSION: u32 = 1;
    const DOC: &'static str = "a dataset card";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Release));

    async fn run(&self, _: Which, ctx: StageContext) -> Result<Output, StageError> {
        let card = "---\nlicense: cc0-1.0\n---\n\n# Shapes\n\n## Contents\n\n| split | rows |\n| --- | ---: |\n| train | 950 |\n| test | 50 |\n";
        std::fs::write(ctx.out_dir.join("README.md"), card)?;
        Ok(Output {
            rows: None,
            schema: None,
            meta: json!({}),
        })
    }
}

const RECIPE: &str = r#"
[recipe]
name = "report"
[nodes.prompts]
kind = "test.prompts"
[nodes.draw_right]
kind = "test.samples"
[nodes.draw_wrong]
kind = "test.samples"
config = { wrong = true }
[nodes.sft]
kind = "test.trained"
[nodes.release]
kind = "test.released"
[nodes.eval_right]
kind = "eval.shapes_geneval"
inputs = { samples = "draw_right", prompts = "prompts" }
config = { bootstrap_rounds = 200 }
[nodes.eval_wrong]
kind = "eval.shapes_geneval"
inputs = { samples = "draw_wrong", prompts = "prompts", baseline = "draw_right" }
config = { bootstrap_rounds = 200 }
[nodes.scores]
kind = "eval.scores"
inputs = { evals = ["eval_right", "eval_wrong"] }
[nodes.report]
kind = "eval.report"
inputs = { evals = ["eval_right", "eval_wrong"], samples = ["draw_right", "draw_wrong"], scores = "scores", models = ["sft"], dataset = "release" }
config = { per_task = 1, extremes = 2 }
"#;

/// Run the recipe; the store's folder and the page's path.
fn report() -> (Ran, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let ran = run_recipe(
        |registry| {
            registry.register(Prompts);
            registry.register(Samples);
            registry.register(Trained);
            registry.register(Released);
        },
        RECIPE,
        work.path(),
    )
    .unwrap_or_else(|e| panic!("recipe: {e}"));
    let page = ran.dir_of("report").join(eval::report::stage::FILE);
    (ran, page)
}

#[test]
fn the_page_holds_scores_judges_grids_curves_and_the_card() {
    let (_dir, page) = report();
    let html = std::fs::read_to_string(&page).unwrap();
    // Both evaluations side by side, each score labelled with its judge.
    assert!(html.contains("eval_right") && html.contains("eval_wrong"));
    assert!(html.contains("<table class=\"scores\">"));
    let cells = html.matches("<td class=\"num\"><b>").count();
    assert_eq!(
        cells,
        html.matches("class=\"judge exact\" title=").count() - 2
    );
    assert!(
        cells >= 2 * 7,
        "overall and six tasks for two models: {cells}"
    );
    // The right images score 1 with an interval; the paired difference is reported.
    assert!(html.contains("<b>1.000</b> <span class=\"ci\">95 % [1.000, 1.000]</span>"));
    assert!(html.contains("against <b>draw_right</b>"));
    // Grids: worst 2 + best 2 + one per task, two images each, for each evaluation.
    assert_eq!(
        html.matches("<img src=\"data:image/png;base64,").count(),
        2 * (2 + 2 + 6) * 2
    );
    assert!(html.contains("✓") && html.contains("✗"));
    // The wrong model's worst prompts have no image right; the right one's best, all.
    let first_mean = |from: &str, section: &str| {
        let at = html.find(from).unwrap();
        let at = at + html[at..].find(section).unwrap();
        let at = at + html[at..].find("<span class=\"mean\">").unwrap();
        html[at..].split('<').nth(1).unwrap().to_string()
    };
    assert_eq!(
        first_mean("<h3>eval_wrong", "Worst prompts"),
        "span class=\"mean\">0/2"
    );
    assert_eq!(
        first_mean("<h3>eval_right", "Best prompts"),
        "span class=\"mean\">2/2"
    );
    // User text is escaped, never markup.
    assert!(html.contains("a photo of &lt;b&gt;two&lt;/b&gt; &amp; &quot;squares&quot;"));
    assert!(html.contains("Top left: &lt;i&gt;"));
    assert!(!html.contains("<b>two</b>") && !html.contains("<i>"));
    // Charts: the bar chart per prompt table, loss, learning rate and held-out score.
    assert_eq!(html.matches("<svg").count(), 1 + 3);
    assert!(html.contains("Held-out score"));
    // The dataset card's table, without its front matter.
    assert!(html.contains("<td>train</td><td>950</td>") && !html.contains("cc0-1.0"));
    // Self-contained: no script, nothing fetched from elsewhere.
    assert!(!html.contains("<script"));
    for attr in ["src=\"", "href=\""] {
        for at in html.match_indices(attr).map(|(i, _)| i + attr.len()) {
            let target = &html[at..];
            assert!(
                target.starts_with("data:") || target.starts_with('#'),
                "{attr}{}",
                &target[..40.min(target.len())]
            );
        }
    }
}

/// Chromium, or `None` (skipped with a reason) unless `REASONGEN_REQUIRE_CHROMIUM` is
/// set.
fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(
        std::env::var("REASONGEN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("REASONGEN_REQUIRE_CHROMIUM").is_err(),
        "{} is missing but REASONGEN_REQUIRE_CHROMIUM is set",
        path.display()
    );
    eprintln!(
        "skipped: no Chromium at {} (set REASONGEN_CHROMIUM; .ci/run installs Debian's chromium)",
        path.display()
    );
    None
}

/// What headless Chromium made of a page: the DOM after load, the console messages it
/// logged, and the screenshot's bytes.
struct Opened {
    dom: String,
    console: Vec<String>,
    screenshot: Vec<u8>,
}

fn open(chromium: &Path, page: &Path) -> Opened {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let run = |extra: &[String]| {
        let profile = tempfile::tempdir_in(tmp.path()).unwrap();
        let o = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    let shot = tmp.path().join("shot.png");
    let a = run(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1280,2000".into(),
    ]);
    let b = run(&["--dump-dom".into()]);
    let console = [&a.stderr, &b.stderr]
        .iter()
        .flat_map(|e| {
            String::from_utf8_lossy(e)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains(":CONSOLE"))
        .collect();
    Opened {
        dom: String::from_utf8_lossy(&b.stdout).into_owned(),
        console,
        screenshot: std::fs::read(&shot).unwrap_or_default(),
    }
}

#[test]
fn chromium_renders_the_page_without_console_errors() {
    let Some(chromium) = chromium() else { return };
    let (_dir, page) = report();
    let o = open(&chromium, &page);
    assert!(o.console.is_empty(), "console: {:#?}", o.console);
    assert!(o.screenshot.starts_with(b"\x89PNG"), "no screenshot");
    let shot = image::load_from_memory(&o.screenshot).unwrap().to_rgb8();
    assert_eq!(shot.dimensions(), (1280, 2000));
    let colours: std::collections::HashSet<[u8; 3]> = shot.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 50,
        "a blank page? {} colours",
        colours.len()
    );
    assert!(o.dom.contains("<table class=\"scores\">"), "score table");
    assert!(
        o.dom.contains("<table class=\"settings\">"),
        "settings table"
    );
    assert!(o.dom.matches("<img src=\"data:image/png;base64,").count() >= 40);
    assert!(o.dom.contains("<figure class=\"ok\">") && o.dom.contains("<figure class=\"bad\">"));
    assert_eq!(o.dom.matches("<svg").count(), 4);
}

/// The console check catches what it is there to catch: a page that logs an error.
#[test]
fn chromium_console_errors_are_caught() {
    let Some(chromium) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\"></head><body><script>missing();</script></body></html>",
    )
    .unwrap();
    let o = open(&chromium, &page);
    assert!(
        o.console
            .iter()
            .any(|l| l.contains("missing is not defined")),
        "{:#?}",
        o.console
    );
}
