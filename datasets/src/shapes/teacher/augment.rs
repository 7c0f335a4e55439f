//! Augmented prompts in the five families of ReasonGen-R1-SFT-230k (`short_caption`,
//! `paraphrases`, `tags`, `varied_captions`, `object_prompts`), written from the
//! scene as an LLM would write them from its detailed caption.

use super::words::{
    Wording, background, capitalize, counted, inventory, join_list, location, noun, number,
    reading_order,
};
use crate::shapes::scene::{Object, Scene};
use crate::shapes::vocab::{BACKGROUND_NAME, with_article};
use schemas::AugmentedPrompts;

/// `red circle` / `red circles`.
fn colored(obj: &Object) -> (String, String) {
    (
        noun(obj, false),
        format!("{} {}", obj.color.name(), obj.shape.plural()),
    )
}

/// The short caption: every object by color and shape, counted, on the background
/// (`A red circle, two blue squares and a white triangle on a gray background`).
pub(super) fn short_caption(scene: &Scene) -> String {
    let items = counted(&reading_order(scene), colored);
    capitalize(&format!("{items} on a {BACKGROUND_NAME} background"))
}

/// The five families of augmented prompts of a scene: a short caption, two to four
/// paraphrases, tags, three captions of varied detail, and one prompt per object (the
/// background last). A function of what the scene's captions state (each object's
/// colour, shape, size word and place, in reading order), as an LLM writes them from
/// the caption alone: the same from the scene [`super::read_terse_caption`] reads.
pub fn augmented_prompts(scene: &Scene) -> AugmentedPrompts {
    let mut wording = Wording::stated(scene, 0xA06);
    let objects = reading_order(scene);
    let items = counted(&objects, colored);
    let bg = background();
    let flat = if objects.len() == 1 {
        format!("A single flat shape on {BACKGROUND_NAME}: {items}.")
    } else {
        format!("Simple flat shapes on {BACKGROUND_NAME}: {items}.")
    };
    let mut paraphrases = vec![
        format!("{} against a {bg}.", capitalize(&items)),
        format!("A {BACKGROUND_NAME} canvas with {items}."),
        flat,
        format!("a photo of {items}"),
        format!("{}, drawn flat on a {bg}.", capitalize(&items)),
    ];
    wording.shuffle(&mut paraphrases);
    paraphrases.truncate(2 + wording.below(3));

    let mut tags: Vec<String> = Vec::new();
    for obj in &objects {
        let tag = noun(obj, false);
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    let count_tag = match objects.len() {
        1 => "single shape".to_owned(),
        n => format!("{} shapes", number(n)),
    };
    tags.extend([
        count_tag,
        format!("{BACKGROUND_NAME} background"),
        "flat colors".to_owned(),
        "geometric shapes".to_owned(),
        "minimalist".to_owned(),
    ]);

    let placed: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                with_article(&noun(o, false)),
                location(o, &mut wording)
            )
        })
        .collect();
    let sized: Vec<String> = objects
        .iter()
        .map(|o| with_article(&noun(o, true)))
        .collect();
    let (count, breakdown) = inventory(&objects, "flat shape");
    let varied_captions = vec![
        format!("{}.", capitalize(&join_list(&placed))),
        format!("{} on a {bg}.", capitalize(&join_list(&sized))),
        format!("{} on {BACKGROUND_NAME}{breakdown}.", capitalize(&count)),
    ];

    let mut object_prompts = sized;
    object_prompts.push(with_article(&bg));
    AugmentedPrompts {
        short_caption: Some(short_caption(scene)),
        paraphrases,
        tags,
        varied_captions,
        object_prompts,
    }
}
