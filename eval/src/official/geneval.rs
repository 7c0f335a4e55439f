//! GenEval's `evaluate_images.py` and `summary_scores.py` over a layout.

use super::*;

pub(super) async fn run(job: &Job<'_>) -> Result<Scored, StageError> {
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
