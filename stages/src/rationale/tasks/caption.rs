//! `rationale.caption`: a VLM writes each image's rationale, the dense detailed
//! caption (`detailed_caption`) of the paper's SFT data. The image goes in the request
//! as a `data:` URL; the source's own caption, if any, becomes `brief_caption`.

use super::text;
use crate::rationale::task::Task;
use llm::template::Builtin;
use pipeline::{Arity, ArtifactKind, InputSpec};
use schemas::Provenance;
use schemas::rationale::Rationale;
use schemas::source_image::SourceImage;
use serde_json::Value;

pub struct Caption;

impl Task for Caption {
    type Input = SourceImage;
    const KIND: &'static str = "rationale.caption";
    const NAME: &'static str = "caption";
    const DOC: &'static str = "VLM over an OpenAI-compatible API: each image's rationale (dense detailed caption) → rationale table";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "images",
        kinds: &[ArtifactKind::Table],
        schema: Some("source_image"),
        arity: Arity::One,
        doc: "the images to describe",
    }];
    const TEMPLATE: Builtin = Builtin {
        name: "caption",
        version: 1,
        system: "You write the rationale a text-to-image model writes before it draws: a dense, \
                 faithful description of an image, detailed enough to redraw it.",
        user: "Describe this image in one detailed paragraph: every subject and object, their \
               counts, colours, sizes, materials and textures, where each is and how they relate \
               to one another, the background, the lighting, the style and the composition. \
               Describe only what is visible. Write only the description.",
    };
    const SLOTS: &'static [&'static str] = &["id", "caption", "source"];

    fn id(row: &SourceImage) -> &str {
        &row.id
    }

    fn fill(row: &SourceImage, slot: &str) -> String {
        match slot {
            "id" => row.id.clone(),
            "caption" => row.caption.clone().unwrap_or_default(),
            _ => row.source.clone(),
        }
    }

    fn image(row: &SourceImage) -> Result<Option<&[u8]>, String> {
        match row.image.bytes.as_deref() {
            Some(bytes) if !bytes.is_empty() => Ok(Some(bytes)),
            _ => Err("the row has no image bytes".into()),
        }
    }

    fn output(
        row: SourceImage,
        answer: Value,
        provenance: Provenance,
    ) -> Result<Rationale, String> {
        Ok(Rationale {
            id: row.id,
            brief_caption: row.caption,
            detailed_caption: text(answer)?,
            augmented_prompts: None,
            provenance: vec![provenance],
        })
    }
}
