//! T2I-CompBench's metric scripts, category by category, over a layout.

use super::*;

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
        let answers = crate::official::t2i_results::parse(&text)
            .map_err(|e| StageError::msg(format!("{}: {e}", result.display())))?;
        let dest = ctx.out_dir.join(format!("{category}_vqa_result.json"));
        std::fs::write(&dest, &text).context(dest.display())?;
        let mine: Vec<&LaidFile> = files
            .iter()
            .filter(|f| f.file.starts_with(&format!("{category}/")))
            .collect();
        let (row, scored) = crate::official::t2i_results::category(
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
