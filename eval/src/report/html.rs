//! The report as one self-contained HTML page: inline CSS, inline SVG charts, images
//! as `data:` URIs, no script and no external request. Every text that comes from data
//! (prompts, rationales, reasons, node names) is escaped.

use super::card;
use super::model::{EvalRun, PromptResult, Report, Sample, Training};
use super::svg::{Bar, bar_chart, colour, line_chart, number};
use base64::Engine as _;
use schemas::eval_score::EvalScore;
use std::fmt::Write as _;

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, safe in elements and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1180px;padding:16px 24px;color:#222;background:#fff}
h1{font-size:24px;margin:8px 0}h2{border-bottom:2px solid #4e79a7;padding-bottom:4px;margin-top:32px}
h3{margin:24px 0 8px}h4{margin:16px 0 6px}h5{margin:12px 0 4px;color:#555}
nav a{margin-right:14px}.sub{color:#555}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f8}td.num{text-align:right;white-space:nowrap}
.ci{color:#666;font-size:12px}.judge{font-size:11px;border-radius:3px;padding:0 4px;margin-left:4px;white-space:nowrap}
.judge.exact{background:#e3f1e0;color:#2c5f23}.judge.official{background:#e1ebf6;color:#1f4e7a}
.judge.substitute{background:#fde2e1;color:#a3211b;font-weight:600}
.chart{display:block;margin:8px 0}.chart .tick{font-size:11px;fill:#555}.chart .legend{font-size:12px;fill:#222}.chart .title{font-size:13px;font-weight:600;fill:#222}
.charts{display:flex;flex-wrap:wrap;gap:8px}
.prompts{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}.prompt{border:1px solid #e2e2e2;border-radius:6px;padding:8px;max-width:556px}
.prompt .head{margin-bottom:6px}.prompt .mean{font-weight:700;margin-right:6px}.tag{font-size:11px;background:#eee;border-radius:3px;padding:0 4px;margin-left:6px}
.samples{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:128px;font-size:11px;overflow-wrap:anywhere}figure img,figure .missing{box-sizing:border-box;width:128px;height:128px;image-rendering:pixelated;border:3px solid #ccc;display:block}
figure.ok img{border-color:#59a14f}figure.bad img{border-color:#e15759}
.verdict{font-weight:700}.ok .verdict{color:#2c7a1f}.bad .verdict{color:#c0261d}
.rationale{color:#444;font-style:italic;max-height:7.5em;overflow:hidden;margin:2px 0 0}
.missing{background:#f4f4f4;color:#888;text-align:center;line-height:128px}
code{font-size:12px;background:#f4f4f4;padding:0 3px;border-radius:3px}
";

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style></head><body>",
        escape(&report.title)
    );
    let _ = write!(
        s,
        "<header><h1>{}</h1><p class=\"sub\">Evaluations: {}; training runs: {}; dataset cards: {}. Every score names its judge: <span class=\"judge exact\">exact</span> a known truth, <span class=\"judge official\">official</span> the benchmark's own evaluator, <span class=\"judge substitute\">substitute</span> another judge standing in for it (not the benchmark's number).</p>",
        escape(&report.title),
        report.evals.len(),
        report.trainings.len(),
        report.datasets.len()
    );
    s.push_str("<nav><a href=\"#scores\">Scores</a><a href=\"#images\">Images</a><a href=\"#training\">Training</a><a href=\"#dataset\">Dataset</a></nav></header>");
    scores_section(&mut s, &report.evals);
    images_section(&mut s, &report.evals);
    training_section(&mut s, &report.trainings);
    s.push_str("<section id=\"dataset\"><h2>Dataset</h2>");
    if report.datasets.is_empty() {
        s.push_str("<p class=\"sub\">No dataset release among the inputs.</p>");
    }
    for d in &report.datasets {
        let _ = write!(
            s,
            "<h3>{}</h3>{}",
            escape(&d.node),
            card::to_html(&d.markdown)
        );
    }
    s.push_str("</section></body></html>\n");
    s
}

fn judge_badge(score: &EvalScore) -> String {
    let kind = match score.judge_kind.as_str() {
        k @ ("exact" | "official") => k,
        _ => "substitute",
    };
    let label = if kind == "substitute" {
        "substitute judge"
    } else {
        kind
    };
    format!(
        "<span class=\"judge {kind}\" title=\"{}\">{label}</span>",
        escape(&score.judge)
    )
}

/// Evaluations grouped by what they scored (benchmark and prompt table), in order.
fn groups(evals: &[EvalRun]) -> Vec<Vec<&EvalRun>> {
    let mut out: Vec<Vec<&EvalRun>> = Vec::new();
    for e in evals.iter().filter(|e| !e.scores.is_empty()) {
        match out.iter_mut().find(|g| g[0].group() == e.group()) {
            Some(g) => g.push(e),
            None => out.push(vec![e]),
        }
    }
    out
}

fn scores_section(s: &mut String, evals: &[EvalRun]) {
    s.push_str("<section id=\"scores\"><h2>Scores</h2>");
    if evals.is_empty() {
        s.push_str("<p class=\"sub\">No evaluation among the inputs.</p>");
    }
    for group in groups(evals) {
        let (benchmark, prompt_set, version) = group[0].group();
        let _ = write!(
            s,
            "<h3>{} · prompts {} <code>{}</code></h3>",
            escape(&benchmark),
            escape(&prompt_set),
            escape(&version)
        );
        let mut tasks: Vec<&str> = Vec::new();
        for e in &group {
            for r in &e.scores {
                if !tasks.contains(&r.task.as_str()) {
                    tasks.push(&r.task);
                }
            }
        }
        s.push_str("<table class=\"scores\"><tr><th>task</th>");
        for (i, e) in group.iter().enumerate() {
            let _ = write!(
                s,
                "<th><span style=\"color:{}\">■</span> {}<br><small>model {}</small></th>",
                colour(i),
                escape(&e.label),
                escape(&e.model)
            );
        }
        s.push_str("</tr>");
        for task in &tasks {
            let _ = write!(s, "<tr><td>{}</td>", escape(task));
            for e in &group {
                match cell(e, task) {
                    Some(r) => {
                        let ci = match (r.ci95_low, r.ci95_high) {
                            (Some(lo), Some(hi)) => {
                                format!(" <span class=\"ci\">95 % [{lo:.3}, {hi:.3}]</span>")
                            }
                            _ => String::new(),
                        };
                        let _ = write!(
                            s,
                            "<td class=\"num\"><b>{:.3}</b>{ci}{}</td>",
                            r.score,
                            judge_badge(r)
                        );
                    }
                    None => s.push_str("<td class=\"num\">—</td>"),
                }
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
        let series: Vec<(String, Vec<Option<Bar>>)> = group
            .iter()
            .map(|e| {
                let bars = tasks
                    .iter()
                    .map(|t| {
                        cell(e, t).map(|r| Bar {
                            value: r.score,
                            ci: r.ci95_low.zip(r.ci95_high),
                        })
                    })
                    .collect();
                let judge = e.scores[0].judge_kind.as_str();
                (format!("{} ({judge})", e.label), bars)
            })
            .collect();
        let labels: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
        s.push_str(&bar_chart(&labels, &series));
        for e in &group {
            if let Some(v) = &e.versus {
                let _ = write!(
                    s,
                    "<p><b>{}</b> against <b>{}</b> ({:.3}) on the same prompts: <b>{:+.3}</b> <span class=\"ci\">paired bootstrap 95 % [{:+.3}, {:+.3}]</span></p>",
                    escape(&e.label),
                    escape(&v.baseline),
                    v.baseline_overall,
                    v.difference,
                    v.ci95.0,
                    v.ci95.1
                );
            }
        }
        settings_table(s, &group);
    }
    s.push_str("</section>");
}

/// The score of `task` in `e`.
fn cell<'a>(e: &'a EvalRun, task: &str) -> Option<&'a EvalScore> {
    e.scores.iter().find(|r| r.task == task)
}

/// What each score was measured with, one column per evaluation.
fn settings_table(s: &mut String, group: &[&EvalRun]) {
    type Read = fn(&EvalScore) -> String;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "—".into());
    let rows: [(&str, Read); 10] = [
        ("judge", |r| r.judge.clone()),
        ("prompts", |r| r.prompts.to_string()),
        ("images", |r| r.images.to_string()),
        ("resolution", |r| {
            r.resolution.map_or("—".into(), |v| format!("{v} px"))
        }),
        ("samples per prompt", |r| {
            r.samples_per_prompt.map_or("—".into(), |v| v.to_string())
        }),
        ("CoT (rationale first)", |r| {
            r.cot
                .map_or("—".into(), |v| if v { "yes" } else { "no" }.into())
        }),
        ("CFG weight", |r| r.cfg_weight.map_or("—".into(), number)),
        ("seed", |r| r.seed.map_or("—".into(), |v| v.to_string())),
        ("model digest", |r| short(&r.model)),
        ("images table", |r| short(&r.samples)),
    ];
    s.push_str("<table class=\"settings\"><tr><th>setting</th>");
    for e in group {
        let _ = write!(s, "<th>{}</th>", escape(&e.label));
    }
    s.push_str("</tr>");
    for (name, read) in rows {
        let _ = write!(s, "<tr><td>{name}</td>");
        for e in group {
            let v = opt(e.scores.first().map(read));
            let _ = write!(s, "<td>{}</td>", escape(&v));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
}

fn short(hex: &str) -> String {
    hex.chars().take(12).collect()
}

fn images_section(s: &mut String, evals: &[EvalRun]) {
    s.push_str("<section id=\"images\"><h2>Images</h2><p class=\"sub\">Each prompt, then each image with the judge's verdict and reason, and the rationale the model wrote before drawing it. The worst and best prompts are ranked by the share of their images judged right.</p>");
    for e in evals {
        let judge = e.scores.first().map(judge_badge).unwrap_or_default();
        let _ = write!(
            s,
            "<h3>{} <small>model {}</small>{judge}</h3><p class=\"sub\">Prompts judged: {}.</p>",
            escape(&e.label),
            escape(&e.model),
            e.prompts_judged
        );
        if let Some(note) = &e.images_note {
            let _ = write!(s, "<p class=\"sub\">{}</p>", escape(note));
        }
        for (title, prompts) in [("Worst prompts", &e.worst), ("Best prompts", &e.best)] {
            if !prompts.is_empty() {
                let _ = write!(s, "<h4>{title}</h4>");
                prompt_cards(s, prompts);
            }
        }
        if !e.by_task.is_empty() {
            s.push_str("<h4>By task</h4>");
        }
        for (task, prompts) in &e.by_task {
            let _ = write!(s, "<h5>{}</h5>", escape(task));
            prompt_cards(s, prompts);
        }
    }
    s.push_str("</section>");
}

fn prompt_cards(s: &mut String, prompts: &[PromptResult]) {
    s.push_str("<div class=\"prompts\">");
    prompts.iter().for_each(|p| prompt_card(s, p));
    s.push_str("</div>");
}

fn prompt_card(s: &mut String, p: &PromptResult) {
    let right = p.samples.iter().filter(|x| x.correct).count();
    let _ = write!(
        s,
        "<div class=\"prompt\"><div class=\"head\"><span class=\"mean\">{right}/{}</span><q>{}</q>{}</div><div class=\"samples\">",
        p.samples.len(),
        escape(&p.prompt),
        p.tag
            .as_deref()
            .map(|t| format!("<span class=\"tag\">{}</span>", escape(t)))
            .unwrap_or_default()
    );
    for x in &p.samples {
        sample_figure(s, x);
    }
    s.push_str("</div></div>");
}

/// The MIME type of encoded image bytes (PNG unless another signature says otherwise).
fn mime(bytes: &[u8]) -> &'static str {
    match bytes {
        [0xFF, 0xD8, ..] => "image/jpeg",
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => "image/webp",
        [b'G', b'I', b'F', ..] => "image/gif",
        _ => "image/png",
    }
}

fn sample_figure(s: &mut String, x: &Sample) {
    let (class, mark) = if x.correct {
        ("ok", "✓")
    } else {
        ("bad", "✗")
    };
    let _ = write!(s, "<figure class=\"{class}\">");
    match &x.image {
        Some(bytes) => {
            let _ = write!(
                s,
                "<img src=\"data:{};base64,{}\" alt=\"{}\" width=\"128\" height=\"128\">",
                mime(bytes),
                base64::engine::general_purpose::STANDARD.encode(bytes),
                escape(&x.id)
            );
        }
        None => s.push_str("<div class=\"missing\">no image</div>"),
    }
    let _ = write!(
        s,
        "<figcaption><span class=\"verdict\">{mark}</span> {}",
        escape(&x.reason)
    );
    if let Some(r) = &x.rationale {
        let _ = write!(s, "<p class=\"rationale\">{}</p>", escape(r));
    }
    s.push_str("</figcaption></figure>");
}

fn training_section(s: &mut String, trainings: &[Training]) {
    s.push_str("<section id=\"training\"><h2>Training</h2>");
    if trainings.is_empty() {
        s.push_str("<p class=\"sub\">No training run among the inputs.</p>");
    }
    for t in trainings {
        let _ = write!(s, "<h3>{}</h3><div class=\"charts\">", escape(&t.node));
        for c in &t.charts {
            s.push_str(&line_chart(c));
        }
        s.push_str("</div>");
    }
    s.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<img src="x" onerror='y'> & co"#),
            "&lt;img src=&quot;x&quot; onerror=&#39;y&#39;&gt; &amp; co"
        );
    }

    #[test]
    fn mime_follows_the_signature() {
        assert_eq!(mime(b"\x89PNG\r\n"), "image/png");
        assert_eq!(mime(&[0xFF, 0xD8, 0xFF]), "image/jpeg");
        assert_eq!(mime(b"RIFF\0\0\0\0WEBPVP8"), "image/webp");
    }
}
