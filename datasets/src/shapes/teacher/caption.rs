//! The rationale in two styles. The detailed caption: an opening with how many shapes
//! of which kinds are on the background; one sentence per object in reading order with
//! its size, color, shape, place on the canvas and its relation to the object before;
//! a closing remark on the style. The terse caption: the same opening, shortened, then
//! one clause per object in reading order, its place first and its noun phrase last
//! (`Top left: a small red square.`), nothing else; [`read_terse_caption`] reads the
//! scene a terse caption states back.

use super::words::{
    Wording, background, capitalize, inventory, location, noun, place_name, reading_order,
    relation_phrase, stated_object,
};
use crate::shapes::scene::Scene;
use crate::shapes::vocab::{Color, Shape, with_article};

/// The detailed caption of a scene, as a captioning model would write it. The wording
/// varies between scenes but is a function of the scene alone.
pub fn detailed_caption(scene: &Scene) -> String {
    let mut wording = Wording::new(scene, 0xCA97);
    let objects = reading_order(scene);
    let bg = background();
    let (count, breakdown) = inventory(&objects, "flat shape");
    let mut sentences = vec![match wording.below(3) {
        0 => format!("The image shows {count} on a {bg}{breakdown}."),
        1 => format!("A {bg} holds {count}{breakdown}."),
        _ => format!("This simple picture contains {count} set against a {bg}{breakdown}."),
    }];
    for (i, obj) in objects.iter().enumerate() {
        let a_noun = with_article(&noun(obj, true));
        let place = location(obj, &mut wording);
        let previous = i.checked_sub(1).map(|j| &objects[j]);
        let relation = previous.and_then(|p| relation_phrase(obj, p));
        // The previous object by name, when no other object shares its color and shape.
        let previous_name = previous
            .filter(|p| {
                objects
                    .iter()
                    .filter(|o| noun(o, false) == noun(p, false))
                    .count()
                    == 1
            })
            .map(|p| noun(p, false));
        sentences.push(match (relation, previous_name, wording.below(3)) {
            (None, _, 0) => format!("{} sits {place}.", capitalize(&a_noun)),
            (None, _, 1) => format!("{}, there is {a_noun}.", capitalize(place)),
            (None, _, _) => format!("{} is placed {place}.", capitalize(&a_noun)),
            (Some(rel), Some(name), 0) => {
                format!("{} sits {place}, {rel} the {name}.", capitalize(&a_noun))
            }
            (Some(rel), _, 1) => format!("{}, {rel} it, is {a_noun}.", capitalize(place)),
            (Some(rel), _, _) => format!("{} it, {place}, is {a_noun}.", capitalize(&rel)),
        });
    }
    let closing: &[&str] = if objects.len() == 1 {
        &[
            "The shape is a solid, flat color with clean edges, and nothing else is in the picture.",
            "It is drawn in a single flat color with crisp edges; the rest of the image is empty.",
        ]
    } else {
        &[
            "All the shapes are solid, flat colors with clean edges, and none of them touch or overlap.",
            "Each shape is drawn in a single flat color with crisp edges, clearly apart from the others.",
        ]
    };
    sentences.push(wording.pick(closing).to_owned());
    sentences.join(" ")
}

/// The terse caption of a scene: every object's place and noun phrase in a fixed
/// order and wording, so that each object's colour and shape stand next to its place
/// (a model as small as the shapes world's reads them off there); no relations (the
/// places imply them) and no remark on the style.
pub fn terse_caption(scene: &Scene) -> String {
    let objects = reading_order(scene);
    let (count, breakdown) = inventory(&objects, "shape");
    let mut clauses = vec![format!("{} on gray{breakdown}.", capitalize(&count))];
    for obj in &objects {
        let a_noun = with_article(&noun(obj, true));
        clauses.push(format!("{}: {a_noun}.", capitalize(place_name(obj))));
    }
    clauses.join(" ")
}

/// The scene a terse caption states: each object with its colour and shape, centred in
/// its place and sized in the middle of its size word's range, in the caption's order.
/// `None` unless `text` is a terse caption: the scene read is captioned as `text` again.
pub fn read_terse_caption(text: &str) -> Option<Scene> {
    let mut clauses = text.strip_suffix('.')?.split(". ");
    // The opening counts what the clauses state; the round trip below checks it.
    clauses.next()?;
    let objects = clauses
        .map(|clause| {
            let (place, phrase) = clause.split_once(": ")?;
            let [_article, size, color, shape] = phrase.split(' ').collect::<Vec<_>>()[..] else {
                return None;
            };
            stated_object(
                &place.to_lowercase(),
                size,
                Color::from_name(color)?,
                Shape::from_name(shape)?,
            )
        })
        .collect::<Option<Vec<_>>>()?;
    let scene = Scene { objects };
    (terse_caption(&scene) == text).then_some(scene)
}
