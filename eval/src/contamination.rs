//! `eval.contamination`: do a benchmark's prompts appear among a model's training
//! prompts? ReasonGen-R1's RL "validation" files are GenEval's, DPG-Bench's and
//! T2I-CompBench's test prompts (research/benchmarks.md §5), so a recipe that trains on
//! such files and then reports those benchmarks measures memory. The guard compares
//! every benchmark prompt with every training prompt (an `rl_prompt`'s `prompt`, and
//! each of an `sft_sample`'s five prompt families) exactly and after normalisation
//! (case, punctuation, spacing and a leading "a photo of"), then fails the run or, by
//! config, warns; either way `overlaps.jsonl` names each pair by node, row and field.
//! Containment (a benchmark prompt inside a longer caption) is not checked: GenEval's
//! "a photo of a dog" is inside half of any caption set.

use datasets::table::TableReader;
use pipeline::{
    Arity, ArtifactKind, ArtifactType, Bindings, InputSpec, Output, OutputDecl, Stage,
    StageContext, StageError,
};
use schemars::JsonSchema;
use schemas::AugmentedPrompts;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// What the guard does when it finds an overlap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnOverlap {
    /// The node fails, naming the overlaps: nothing downstream runs.
    #[default]
    Fail,
    /// The node succeeds; its report and log say what overlaps.
    Warn,
}

/// Config of `eval.contamination`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContaminationConfig {
    /// `fail` (default) or `warn`.
    #[serde(default)]
    pub on_overlap: OnOverlap,
    /// Leading phrases removed before comparing (after the rest of the normalisation).
    #[serde(default = "default_prefixes")]
    pub strip_prefixes: Vec<String>,
}

fn default_prefixes() -> Vec<String> {
    ["a photo of", "an image of", "a picture of"]
        .map(String::from)
        .to_vec()
}

impl Default for ContaminationConfig {
    fn default() -> Self {
        ContaminationConfig {
            on_overlap: OnOverlap::Fail,
            strip_prefixes: default_prefixes(),
        }
    }
}

/// A prompt's comparison form: lower case, every run of characters other than letters
/// and digits one space, and the first matching prefix of `prefixes` (themselves
/// normalised) removed.
pub fn normalise(text: &str, prefixes: &[String]) -> String {
    fn words(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for w in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if !out.is_empty() {
                out.push(' ');
            }
            out.extend(w.chars().flat_map(char::to_lowercase));
        }
        out
    }
    let text = words(text);
    for p in prefixes {
        let p = words(p);
        if let Some(rest) = text.strip_prefix(&p)
            && (rest.is_empty() || rest.starts_with(' '))
        {
            return rest.trim_start().to_string();
        }
    }
    text
}

/// One text of a table: its node, row id and field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Located {
    pub node: String,
    pub row: String,
    pub field: String,
    pub text: String,
}

/// A benchmark prompt found among the training prompts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Overlap {
    pub benchmark: Located,
    pub training: Located,
    /// `exact` (the same text) or `normalised`.
    pub matched: &'static str,
}

/// Every pair of a benchmark prompt and a training text that are equal after
/// [`normalise`], in the order of the training texts.
pub fn overlaps(
    benchmark: &[Located],
    training: impl IntoIterator<Item = Located>,
    prefixes: &[String],
) -> Vec<Overlap> {
    let mut by_form: HashMap<String, Vec<&Located>> = HashMap::new();
    for b in benchmark {
        by_form
            .entry(normalise(&b.text, prefixes))
            .or_default()
            .push(b);
    }
    let mut out = Vec::new();
    for t in training {
        let form = normalise(&t.text, prefixes);
        if form.is_empty() {
            continue;
        }
        for b in by_form.get(&form).into_iter().flatten() {
            out.push(Overlap {
                benchmark: (*b).clone(),
                training: t.clone(),
                matched: if b.text.trim() == t.text.trim() {
                    "exact"
                } else {
                    "normalised"
                },
            });
        }
    }
    out
}

#[derive(Deserialize)]
struct PromptColumns {
    id: String,
    prompt: String,
}

#[derive(Deserialize)]
struct SftPromptColumns {
    id: String,
    prompts: AugmentedPrompts,
}

/// Every prompt text of a table of `rl_prompt` or `sft_sample` rows, located.
fn texts(node: &str, schema: Option<&str>, dir: &Path) -> Result<Vec<Located>, StageError> {
    let name = schema.and_then(|s| s.split('@').next()).unwrap_or("");
    let reader = TableReader::open(dir)?;
    let at = |row: &str, field: &str, text: String| Located {
        node: node.to_string(),
        row: row.to_string(),
        field: field.to_string(),
        text,
    };
    let mut out = Vec::new();
    match name {
        "rl_prompt" => {
            for b in reader.batches(Some(&["id", "prompt"])) {
                for r in
                    schemas::columns_from_batch::<PromptColumns>(&schemas::rl_prompt::SCHEMA, &b?)?
                {
                    out.push(at(&r.id, "prompt", r.prompt));
                }
            }
        }
        "sft_sample" => {
            for b in reader.batches(Some(&["id", "prompts"])) {
                for r in schemas::columns_from_batch::<SftPromptColumns>(
                    &schemas::sft_sample::SCHEMA,
                    &b?,
                )? {
                    let p = r.prompts;
                    out.extend(p.short_caption.map(|t| at(&r.id, "short_caption", t)));
                    for (field, list) in [
                        ("paraphrases", p.paraphrases),
                        ("tags", p.tags),
                        ("varied_captions", p.varied_captions),
                        ("object_prompts", p.object_prompts),
                    ] {
                        out.extend(list.into_iter().map(|t| at(&r.id, field, t)));
                    }
                }
            }
        }
        other => {
            return Err(StageError::msg(format!(
                "input `{node}`: a table of `{other}` rows; the guard reads rl_prompt or sft_sample tables"
            )));
        }
    }
    Ok(out)
}

pub struct Contamination;

impl Stage for Contamination {
    type Config = ContaminationConfig;
    const KIND: &'static str = "eval.contamination";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Fails (or warns) when a benchmark's prompts appear among training prompts (rl_prompt or sft_sample tables), exactly or after normalisation.";
    const INPUTS: &'static [InputSpec] = &[
        InputSpec {
            name: "benchmark",
            kinds: &[ArtifactKind::Table],
            schema: Some("rl_prompt"),
            arity: Arity::Many,
            doc: "the benchmark prompt suites",
        },
        InputSpec {
            name: "training",
            kinds: &[ArtifactKind::Table],
            schema: None,
            arity: Arity::Many,
            doc: "the model's training prompts: rl_prompt or sft_sample tables",
        },
    ];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Report));

    fn validate(config: &ContaminationConfig, _: &Bindings) -> Result<(), String> {
        if config
            .strip_prefixes
            .iter()
            .any(|p| normalise(p, &[]).is_empty())
        {
            return Err("`strip_prefixes` has an empty phrase".into());
        }
        Ok(())
    }

    async fn run(
        &self,
        config: ContaminationConfig,
        ctx: StageContext,
    ) -> Result<Output, StageError> {
        tokio::task::spawn_blocking(move || {
            let mut benchmark = Vec::new();
            for b in ctx.inputs("benchmark") {
                benchmark.extend(texts(&b.node, b.content.schema.as_deref(), &b.dir)?);
            }
            let mut training_texts = 0u64;
            let mut found = Vec::new();
            for t in ctx.inputs("training") {
                ctx.check_cancelled()?;
                let rows = texts(&t.node, t.content.schema.as_deref(), &t.dir)?;
                training_texts += rows.len() as u64;
                found.extend(overlaps(&benchmark, rows, &config.strip_prefixes));
            }
            let mut by_node: BTreeMap<String, u64> = BTreeMap::new();
            let mut prompts: BTreeSet<(&str, &str)> = BTreeSet::new();
            for o in &found {
                *by_node.entry(o.training.node.clone()).or_default() += 1;
                prompts.insert((&o.benchmark.node, &o.benchmark.row));
            }
            let mut lines = String::new();
            for o in &found {
                lines.push_str(&serde_json::to_string(o).expect("json"));
                lines.push('\n');
            }
            std::fs::write(ctx.out_dir.join("overlaps.jsonl"), lines)?;
            let summary = format!(
                "{} of {} benchmark prompts appear among {} training prompts ({} pairs)",
                prompts.len(),
                benchmark.len(),
                training_texts,
                found.len()
            );
            let mut md = format!("# Contamination\n\n{summary}.\n");
            for o in found.iter().take(20) {
                let _ = write!(
                    md,
                    "\n- `{}` row `{}`: “{}” = `{}` row `{}` {}: “{}” ({})",
                    o.benchmark.node,
                    o.benchmark.row,
                    o.benchmark.text,
                    o.training.node,
                    o.training.row,
                    o.training.field,
                    o.training.text,
                    o.matched
                );
            }
            std::fs::write(ctx.out_dir.join("report.md"), md)?;
            ctx.count("overlapping_prompts", prompts.len() as u64);
            if let Some(o) = found.first() {
                let first = format!(
                    "`{}` row `{}` (“{}”) is `{}` row `{}` {} (“{}”, {})",
                    o.benchmark.node,
                    o.benchmark.row,
                    o.benchmark.text,
                    o.training.node,
                    o.training.row,
                    o.training.field,
                    o.training.text,
                    o.matched
                );
                match config.on_overlap {
                    OnOverlap::Fail => {
                        return Err(StageError::msg(format!(
                            "contamination: {summary}; first: {first}. Remove them from training, or set on_overlap = \"warn\" to go on"
                        )));
                    }
                    OnOverlap::Warn => ctx.log(format!("warning: contamination: {summary}; first: {first}")),
                }
            } else {
                ctx.log(summary.clone());
            }
            Ok(Output {
                rows: None,
                schema: None,
                meta: json!({
                    "benchmark_prompts": benchmark.len(),
                    "training_prompts": training_texts,
                    "overlapping_prompts": prompts.len(),
                    "pairs": found.len(),
                    "by_training_node": by_node,
                }),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("contamination thread: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(node: &str, row: &str, text: &str) -> Located {
        Located {
            node: node.into(),
            row: row.into(),
            field: "prompt".into(),
            text: text.into(),
        }
    }

    #[test]
    fn normalisation_ignores_case_punctuation_spacing_and_the_photo_prefix() {
        let p = default_prefixes();
        assert_eq!(normalise("A photo of a Dog.", &p), "a dog");
        assert_eq!(normalise("  a   dog ", &p), "a dog");
        assert_eq!(
            normalise("a photograph of a dog", &p),
            "a photograph of a dog"
        );
        assert_eq!(normalise("a photo of", &p), "");
        assert_ne!(normalise("a red cat", &p), normalise("a red car", &p));
    }

    #[test]
    fn overlaps_are_named_exact_or_normalised() {
        let p = default_prefixes();
        let bench = [
            at("geneval", "00001", "a photo of a bench"),
            at("geneval", "00002", "a photo of two cats"),
        ];
        let train = vec![
            at("sft", "s1", "a photo of a bench"),
            at("sft", "s2", "Two cats!"),
            at("sft", "s3", "two cats on a bench"),
            at("sft", "s4", ""),
        ];
        let found = overlaps(&bench, train, &p);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].training.row.as_str(), found[0].matched),
            ("s1", "exact")
        );
        assert_eq!(
            (found[1].benchmark.row.as_str(), found[1].matched),
            ("00002", "normalised")
        );
    }
}
