//! `rationale.augment`: an LLM writes the augmented prompts of each detailed caption,
//! in the five families of ReasonGen-R1-SFT-230k (`short_caption`, `paraphrases`,
//! `tags`, `varied_captions`, `object_prompts`; the SFT draws one family per sample),
//! as structured output. The output row is the input row with `augmented_prompts` set
//! and one more provenance record.

use crate::rationale::task::Task;
use llm::template::Builtin;
use pipeline::{Arity, ArtifactKind, InputSpec};
use schemas::rationale::Rationale;
use schemas::{AugmentedPrompts, Provenance};
use serde_json::{Value, json};

pub struct Augment;

/// The answer's schema: strict-mode compatible (every property required, no others).
fn answer_schema() -> Value {
    let list = json!({"type": "array", "items": {"type": "string"}, "minItems": 1});
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["short_caption", "paraphrases", "tags", "varied_captions", "object_prompts"],
        "properties": {
            "short_caption": {"type": "string"},
            "paraphrases": list,
            "tags": list,
            "varied_captions": list,
            "object_prompts": list,
        },
    })
}

impl Task for Augment {
    type Input = Rationale;
    const KIND: &'static str = "rationale.augment";
    const NAME: &'static str = "augment";
    const DOC: &'static str = "LLM over an OpenAI-compatible API: augmented prompts (five families) of each detailed caption → rationale table";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "rationales",
        kinds: &[ArtifactKind::Table],
        schema: Some("rationale"),
        arity: Arity::One,
        doc: "rationales whose detailed captions get augmented prompts",
    }];
    const TEMPLATE: Builtin = Builtin {
        name: "augment",
        version: 1,
        system: "You write the prompts a user could type to get a given image from a \
                 text-to-image model. Answer with one JSON object that follows this JSON \
                 schema: {schema}",
        user: "Detailed description of the image:\n{detailed_caption}\n\nWrite:\n\
               - short_caption: one short sentence naming the main subject;\n\
               - paraphrases: 3 rewordings of a medium-length caption;\n\
               - tags: 5 to 10 short tags (objects, attributes, style), no commas inside a tag;\n\
               - varied_captions: 3 captions of different lengths and focus;\n\
               - object_prompts: the main objects, each a short noun phrase with its key \
               attributes.\nKeep every fact consistent with the description.",
    };
    const SLOTS: &'static [&'static str] = &["id", "detailed_caption", "brief_caption", "schema"];

    fn schema() -> Option<Value> {
        Some(answer_schema())
    }

    fn id(row: &Rationale) -> &str {
        &row.id
    }

    fn fill(row: &Rationale, slot: &str) -> String {
        match slot {
            "id" => row.id.clone(),
            "detailed_caption" => row.detailed_caption.clone(),
            "brief_caption" => row.brief_caption.clone().unwrap_or_default(),
            _ => answer_schema().to_string(),
        }
    }

    fn output(
        mut row: Rationale,
        answer: Value,
        provenance: Provenance,
    ) -> Result<Rationale, String> {
        let prompts: AugmentedPrompts = serde_json::from_value(answer)
            .map_err(|e| format!("the answer does not read as augmented prompts: {e}"))?;
        row.augmented_prompts = Some(prompts);
        row.provenance.push(provenance);
        Ok(row)
    }
}
