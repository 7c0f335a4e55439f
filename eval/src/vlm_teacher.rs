//! The shapes VLM ([`crate::vlm::ShapesVlm`]) as the captioner and augmenter of
//! `rationale.caption` and `rationale.augment`: the exact teacher's text (the
//! `shapes.teacher` stage's, style `terse`) from what each request shows, so the
//! shapes recipe makes its rationales over HTTP as the real run does.
//!
//! - A caption request shows an image: the shapes detector reads it and the answer is
//!   the terse caption of the scene it sees ([`caption`]). On a lattice whose slots
//!   keep each object inside one third of the canvas (`recipes/shapes.toml`'s), the
//!   detector places and sizes every object as the scene does, so this is the
//!   teacher's rationale byte for byte.
//! - An augment request shows a terse caption on a line of its text: the answer is the
//!   augmented prompts of the scene it states, as JSON in the five families
//!   ([`augment`]); the teacher writes them from what the caption states too. The
//!   short caption is the request's line `Original caption: …` when it shows one (the
//!   source's own caption, which the teacher takes), else the teacher's own.

use datasets::shapes::{Judge, Scene, augmented_prompts, read_terse_caption, terse_caption};
use image::RgbImage;

/// The start of the line of an augment request that shows the source's own caption.
pub const ORIGINAL_CAPTION: &str = "Original caption: ";

/// The rationale of the (square) image: the terse caption of what the detector sees.
pub fn caption(judge: &Judge, image: &RgbImage) -> String {
    terse_caption(&Scene::from_detections(&judge.detect(image), image.width()))
}

/// The augmented prompts of the terse caption on a line of `text`, as JSON; `Err` when
/// no line is one.
pub fn augment(text: &str) -> Result<String, String> {
    let scene = text
        .lines()
        .find_map(read_terse_caption)
        .ok_or("the request shows no shapes caption (no line reads as a terse caption)")?;
    let mut prompts = augmented_prompts(&scene);
    if let Some(original) = text
        .lines()
        .find_map(|l| l.strip_prefix(ORIGINAL_CAPTION))
        .filter(|c| !c.trim().is_empty())
    {
        prompts.short_caption = Some(original.to_string());
    }
    serde_json::to_string(&prompts).map_err(|e| format!("the augmented prompts as JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::shapes::SceneGenerator;
    use schemas::AugmentedPrompts;

    #[test]
    fn augment_answers_the_stated_scenes_prompts_with_the_original_caption() {
        let scene = SceneGenerator::new(2).random().unwrap();
        let terse = terse_caption(&scene);
        let text = format!("Detailed description of the image:\n{terse}\n\nWrite: …");
        let read = |answer: String| serde_json::from_str::<AugmentedPrompts>(&answer).unwrap();
        assert_eq!(read(augment(&text).unwrap()), augmented_prompts(&scene));
        let with = format!("{text}\n{ORIGINAL_CAPTION}a photo of a thing\n");
        let prompts = read(augment(&with).unwrap());
        assert_eq!(prompts.short_caption.as_deref(), Some("a photo of a thing"));
        assert_eq!(prompts.tags, augmented_prompts(&scene).tags);
        let empty = format!("{text}\n{ORIGINAL_CAPTION}\n");
        assert_eq!(read(augment(&empty).unwrap()), augmented_prompts(&scene));
        assert!(augment("Detailed description: a cat on a mat.").is_err());
    }
}
