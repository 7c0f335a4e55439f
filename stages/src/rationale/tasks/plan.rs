//! `rationale.plan`: an LLM writes the rationale of a prompt that has no image (RL and
//! evaluation prompts): the detailed description of an image that satisfies the prompt
//! exactly, as the model would write it before drawing. The prompt becomes
//! `brief_caption`.

use super::text;
use crate::rationale::task::Task;
use llm::template::Builtin;
use pipeline::{Arity, ArtifactKind, InputSpec};
use schemas::Provenance;
use schemas::rationale::Rationale;
use schemas::rl_prompt::RlPrompt;
use serde_json::Value;

pub struct Plan;

impl Task for Plan {
    type Input = RlPrompt;
    const KIND: &'static str = "rationale.plan";
    const NAME: &'static str = "plan";
    const DOC: &'static str = "LLM over an OpenAI-compatible API: the rationale of each prompt (prompt-only data) → rationale table";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "prompts",
        kinds: &[ArtifactKind::Table],
        schema: Some("rl_prompt"),
        arity: Arity::One,
        doc: "the prompts to plan images for",
    }];
    const TEMPLATE: Builtin = Builtin {
        name: "plan",
        version: 1,
        system: "You write the rationale a text-to-image model writes before it draws: given a \
                 short prompt, a dense, detailed description of one image that satisfies it \
                 exactly.",
        user: "Prompt: {prompt}\n\nDescribe, in one detailed paragraph, the image to draw: keep \
               every object, count, colour, attribute and spatial relation the prompt asks for, \
               and add the setting, background, lighting and style a good image would have \
               without contradicting it. Write only the description.",
    };
    const SLOTS: &'static [&'static str] = &["id", "prompt", "family", "tag"];

    fn id(row: &RlPrompt) -> &str {
        &row.id
    }

    fn fill(row: &RlPrompt, slot: &str) -> String {
        match slot {
            "id" => row.id.clone(),
            "prompt" => row.prompt.clone(),
            "family" => row.family.clone(),
            _ => row.tag.clone().unwrap_or_default(),
        }
    }

    fn output(row: RlPrompt, answer: Value, provenance: Provenance) -> Result<Rationale, String> {
        Ok(Rationale {
            id: row.id,
            brief_caption: Some(row.prompt),
            detailed_caption: text(answer)?,
            augmented_prompts: None,
            provenance: vec![provenance],
        })
    }
}
