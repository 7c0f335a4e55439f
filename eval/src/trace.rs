//! Lineage from a score to the data (`reasongen trace`): from an eval node's score (one
//! task of it, or one image it judged) back through the images it judged, the model
//! that drew them, the training runs that made that model (GRPO, then SFT), the SFT
//! samples related to the failing prompts, and the rationale rows behind those samples
//! with their LLM request keys and templates. Everything is read from the store's
//! manifests (each artifact's inputs by digest) and tables; no run log is needed.
//!
//! "Related" SFT samples: those whose prompt candidates or rationale hold every content
//! word of a failing prompt (articles, "photo", "of", … left out), so that a counting
//! failure on "a photo of three circles" lists the samples that taught three circles.

use crate::scores::{SCORES_DIR, read_all, read_scores, read_verdicts};
use pipeline::{Digest, Manifest, Store};
use schemas::AugmentedPrompts;
use schemas::eval_sample::EvalSample;
use schemas::eval_score::EvalScore;
use schemas::rationale::Rationale;
use schemas::sft_sample::SftSample;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;

/// What to trace: an eval report (or an `eval.scores` table), optionally one task of
/// it or one image it judged.
#[derive(Clone, Debug, Default)]
pub struct TraceQuery {
    pub task: Option<String>,
    pub sample: Option<String>,
    /// Images, SFT samples and rationale rows shown at most (counts are always whole).
    pub limit: usize,
}

type Result<T> = std::result::Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The first artifact upstream of `start` (itself included) that `pick` accepts,
/// breadth first over the manifests' inputs.
fn upstream(
    store: &Store,
    start: Digest,
    pick: impl Fn(&Manifest) -> bool,
) -> Result<Option<Manifest>> {
    let mut queue = VecDeque::from([start]);
    let mut seen = BTreeSet::new();
    while let Some(d) = queue.pop_front() {
        if !seen.insert(d) {
            continue;
        }
        let m = store.manifest(&d).map_err(err)?;
        if pick(&m) {
            return Ok(Some(m));
        }
        queue.extend(m.lineage.key.inputs.values().flatten().copied());
    }
    Ok(None)
}

fn schema_is(m: &Manifest, name: &str) -> bool {
    m.content
        .schema
        .as_deref()
        .is_some_and(|s| s.split('@').next() == Some(name))
}

fn made_by(m: &Manifest) -> String {
    let l = &m.lineage;
    format!(
        "`{}` ({} v{}, {}, run {})",
        l.node,
        l.key.stage,
        l.key.stage_version,
        m.digest.short(),
        l.run_id
    )
}

/// Words of a prompt that say what must be drawn.
pub fn content_words(text: &str) -> Vec<String> {
    const STOP: &[&str] = &[
        "a", "an", "the", "photo", "of", "and", "with", "image", "picture", "on", "in", "is",
        "are", "to", "output", "richly", "detailed", "prompt",
    ];
    let mut words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !STOP.contains(&w.as_str()))
        .collect();
    words.dedup();
    words
}

fn sample_text(s: &SftSample) -> String {
    let AugmentedPrompts {
        short_caption,
        paraphrases,
        tags,
        varied_captions,
        object_prompts,
    } = &s.prompts;
    let mut t = s.rationale.to_lowercase();
    for p in short_caption
        .iter()
        .chain(paraphrases)
        .chain(tags)
        .chain(varied_captions)
        .chain(object_prompts)
    {
        t.push(' ');
        t.push_str(&p.to_lowercase());
    }
    t
}

/// Whether every word occurs in `text` as a word.
fn holds_all(text: &str, words: &[String]) -> bool {
    let have: BTreeSet<&str> = text.split(|c: char| !c.is_alphanumeric()).collect();
    words.iter().all(|w| have.contains(w.as_str()))
}

fn clip(text: &str, n: usize) -> String {
    let t: String = text.chars().take(n).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// Trace `report` (an eval report's or an `eval.scores` table's digest) as `query`
/// asks; the chain as text, one step per paragraph.
pub fn trace(store: &Store, report: Digest, query: &TraceQuery) -> Result<String> {
    let m = store.manifest(&report).map_err(err)?;
    if schema_is(&m, "eval_score") {
        let rows: Vec<EvalScore> = read_all(&store.object_dir(&report)).map_err(err)?;
        let mut reports: Vec<String> = rows
            .iter()
            .filter(|r| query.task.as_deref().is_none_or(|t| t == r.task))
            .map(|r| r.eval_report.clone())
            .collect();
        reports.dedup();
        let mut out = String::new();
        for r in reports {
            let d: Digest = r.parse().map_err(err)?;
            out += &trace(store, d, query)?;
            out.push('\n');
        }
        return Ok(out);
    }
    let dir = store.object_dir(&report);
    if !dir.join(SCORES_DIR).is_dir() {
        return Err(format!(
            "{} is not the report of an eval node (no `{SCORES_DIR}/`): trace an eval node, an eval.scores node, or NODE:TASK",
            made_by(&m)
        ));
    }
    let mut out = String::new();
    let scores = read_scores(&dir).map_err(err)?;
    let shown: Vec<&EvalScore> = scores
        .iter()
        .filter(|s| {
            query
                .task
                .as_deref()
                .is_none_or(|t| t == s.task || s.task == "overall")
        })
        .collect();
    let _ = writeln!(out, "score   {}", made_by(&m));
    for s in &shown {
        let ci = match (s.ci95_low, s.ci95_high) {
            (Some(lo), Some(hi)) => format!(" (95% {lo:.3}–{hi:.3})"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "        {} {}: {:.3}{ci} over {} prompts, {} images — judge: {} [{}]",
            s.benchmark, s.task, s.score, s.prompts, s.images, s.judge, s.judge_kind
        );
    }
    if let Some(t) = &query.task
        && !scores.iter().any(|s| &s.task == t)
    {
        let tasks: Vec<&str> = scores.iter().map(|s| s.task.as_str()).collect();
        return Err(format!(
            "no task `{t}` in this report: {}",
            tasks.join(", ")
        ));
    }

    // The images: the one asked for, or those judged wrong (in the task).
    let verdicts = read_verdicts(&dir).map_err(err)?;
    let tag_of = |v: &EvalSample| -> Option<String> {
        v.details
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|d| d["tag"].as_str().map(str::to_string))
            .or_else(|| v.tag.clone())
    };
    let picked: Vec<&EvalSample> = match &query.sample {
        Some(id) => vec![verdicts.iter().find(|v| &v.id == id).ok_or_else(|| {
            format!(
                "no image `{id}` among the {} this node judged",
                verdicts.len()
            )
        })?],
        None => verdicts
            .iter()
            .filter(|v| v.score.is_some_and(|s| s < 1.0))
            .filter(|v| query.task.is_none() || tag_of(v) == query.task)
            .collect(),
    };
    let samples_digest: Digest = scores
        .first()
        .map(|s| s.samples.parse())
        .transpose()
        .map_err(err)?
        .ok_or("the report holds no scores")?;
    let generated = store.manifest(&samples_digest).map_err(err)?;
    let images: HashMap<String, EvalSample> =
        read_all::<EvalSample>(&store.object_dir(&samples_digest))
            .map_err(err)?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
    let _ = writeln!(
        out,
        "\nimages  {} of {} judged {}, drawn by {}",
        picked.len(),
        verdicts.len(),
        if query.sample.is_some() {
            "(the one asked for)"
        } else {
            "wrong"
        },
        made_by(&generated)
    );
    for v in picked.iter().take(query.limit) {
        let rationale = images
            .get(&v.id)
            .and_then(|s| s.rationale.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "        {}  “{}”  score {}  {}\n          rationale: “{}”",
            v.id,
            v.prompt,
            v.score.unwrap_or(f64::NAN),
            v.details.as_deref().unwrap_or(""),
            clip(&rationale, 160)
        );
    }

    // The model and the training runs behind it.
    let model_hex = scores[0].model.clone();
    let model: Digest = model_hex
        .parse()
        .map_err(|e| format!("model digest `{model_hex}`: {e}"))?;
    let mut runs = Vec::new();
    let mut sft_tables = Vec::new();
    let mut at = Some(model);
    while let Some(d) = at {
        let mm = store.manifest(&d).map_err(err)?;
        let stage = mm.lineage.key.stage.clone();
        at = None;
        if stage == "model.grpo" || stage == "model.sft" {
            at = mm
                .lineage
                .key
                .inputs
                .get("model")
                .and_then(|v| v.first())
                .copied();
            if let Some(s) = mm.lineage.key.inputs.get("samples").and_then(|v| v.first()) {
                sft_tables.push(*s);
            }
        }
        runs.push(mm);
    }
    for (i, r) in runs.iter().enumerate() {
        let c = &r.lineage.key.config;
        let pick = |k: &str| c.get(k).map(|v| format!(" {k}={v}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{}{}{}{}{}{}",
            if i == 0 { "\nmodel   " } else { "  from  " },
            made_by(r),
            pick("steps"),
            pick("lr"),
            pick("batch_size"),
            pick("rationale")
        );
    }

    // The SFT samples related to the picked prompts, and their rationale rows.
    let prompts: Vec<(String, Vec<String>)> = {
        let mut seen = BTreeSet::new();
        picked
            .iter()
            .filter(|v| seen.insert(v.prompt.clone()))
            .map(|v| (v.prompt.clone(), content_words(&v.prompt)))
            .collect()
    };
    for table in sft_tables {
        let tm = store.manifest(&table).map_err(err)?;
        let rows: Vec<SftSample> = read_all(&store.object_dir(&table)).map_err(err)?;
        // Which prompts' words each sample holds, read once.
        let holds: Vec<Vec<bool>> = rows
            .iter()
            .map(|r| {
                let text = sample_text(r);
                prompts
                    .iter()
                    .map(|(_, w)| !w.is_empty() && holds_all(&text, w))
                    .collect()
            })
            .collect();
        let related: Vec<&SftSample> = rows
            .iter()
            .zip(&holds)
            .filter(|(_, h)| h.contains(&true))
            .map(|(r, _)| r)
            .collect();
        let _ = writeln!(
            out,
            "\nSFT     {} of {} samples in {} hold the words of the {} prompt(s) above",
            related.len(),
            rows.len(),
            made_by(&tm),
            prompts.len()
        );
        for (i, (p, w)) in prompts.iter().enumerate() {
            let n = holds.iter().filter(|h| h[i]).count();
            let _ = writeln!(out, "        {n:>6} for “{p}” ({})", w.join(" "));
        }
        let rationale_table = upstream(store, table, |m| schema_is(m, "rationale")).map_err(err)?;
        let rationales: HashMap<String, Rationale> = match &rationale_table {
            Some(rt) => read_all::<Rationale>(&store.object_dir(&rt.digest))
                .map_err(err)?
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect(),
            None => HashMap::new(),
        };
        if let Some(rt) = &rationale_table {
            let _ = writeln!(out, "\nrationales from {}", made_by(rt));
        }
        for s in related.iter().take(query.limit) {
            let _ = writeln!(
                out,
                "        sample {}  prompt “{}”\n          rationale: “{}”",
                s.id,
                s.prompts.short_caption.as_deref().unwrap_or(""),
                clip(&s.rationale, 160)
            );
            let provenance = rationales
                .get(&s.id)
                .map_or(&s.provenance, |r| &r.provenance);
            if rationales.contains_key(&s.id) {
                let _ = writeln!(out, "          rationale row `{}`", s.id);
            }
            for p in provenance {
                let _ = writeln!(
                    out,
                    "          {} by {} with template {}@v{}, request key {}",
                    p.task,
                    if p.model.is_empty() { "-" } else { &p.model },
                    p.template,
                    p.template_version,
                    if p.request_key.is_empty() {
                        "-"
                    } else {
                        &p.request_key
                    }
                );
            }
        }
    }
    Ok(out)
}
