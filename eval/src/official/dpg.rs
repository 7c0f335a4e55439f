//! ELLA's `compute_dpg_bench.py` over a layout of 2×2 grids.

use super::*;

pub(super) async fn run(job: &Job<'_>) -> Result<Scored, StageError> {
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
