//! Held-out compositional splits: color–shape pairs, relation–shape pairs, relations
//! between two given shapes and bindings (two colored shapes together) kept out of the
//! training split (its prompts, and the
//! scenes generated to avoid them), so that a model can be tested on combinations of
//! words it saw only apart.
//!
//! Two presets: [`HeldOut::standard`] holds out color–shape pairs, so the look of a
//! held-out pair (a red square's pixels) is never in training at all; a generator of
//! image codes cannot draw it unless its tokenizer's codes are shared between shapes.
//! [`HeldOut::bindings`] holds out which colored shapes appear together and which two
//! shapes stand in which relation, GenEval's attribute-binding and position questions,
//! while every colored shape, and every shape in every relation, is seen in training.

use super::judge::{POSITION_MARGIN, relative_position};
use super::metadata::Metadata;
use super::render::DEFAULT_SIZE;
use super::scene::Scene;
use super::vocab::{Color, Relation, Shape};

/// Which split a prompt belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    HeldOut,
}

impl Split {
    /// `train` or `held_out`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::HeldOut => "held_out",
        }
    }
}

/// The pairs kept out of training. `Default` holds none; [`HeldOut::standard`] is the
/// documented default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldOut {
    /// An object of this shape is never of this color in training.
    pub color_shapes: Vec<(Color, Shape)>,
    /// An object of this shape is never in this relation to an object of another shape
    /// in training (in either phrasing: "a circle above a square" and "a square below
    /// a circle" both show a circle above something).
    pub relation_shapes: Vec<(Relation, Shape)>,
    /// An object of the first shape is never in this relation to an object of the
    /// second in training (either phrasing: "a circle above a triangle" and "a triangle
    /// below a circle" both show it).
    pub relation_triples: Vec<(Shape, Relation, Shape)>,
    /// Two colored shapes never together in one training scene (either order).
    pub bindings: Vec<[(Color, Shape); 2]>,
}

impl HeldOut {
    /// The default held-out pairs: one color per shape (a red square, a green
    /// triangle, a blue circle, a yellow diamond) and two relation–shape pairs (a circle
    /// above, a triangle left of, an object of another shape). Every color, shape and relation
    /// still appears in training in other combinations.
    pub fn standard() -> HeldOut {
        HeldOut {
            color_shapes: vec![
                (Color::Red, Shape::Square),
                (Color::Green, Shape::Triangle),
                (Color::Blue, Shape::Circle),
                (Color::Yellow, Shape::Diamond),
            ],
            relation_shapes: vec![
                (Relation::Above, Shape::Circle),
                (Relation::LeftOf, Shape::Triangle),
            ],
            relation_triples: Vec::new(),
            bindings: Vec::new(),
        }
    }

    /// The binding preset: no color–shape pair and no relation–shape pair; about a
    /// fifth of the bindings of two different colors on two different shapes (a fixed
    /// arithmetic rule spreads them over every color and shape): 110 of 540, so 220 of
    /// the 1,080 `color_attr` prompts; and six of the 24 relations between two shapes
    /// (a circle above a triangle, …; each shape is subject and anchor of held-out and of
    /// training relations, each relation held out three times): 12 of the 48 `position`
    /// prompts, as many as the standard preset's pairs hold out.
    pub fn bindings() -> HeldOut {
        let mut bindings = Vec::new();
        for (a, &sa) in Shape::ALL.iter().enumerate() {
            for (b, &sb) in Shape::ALL.iter().enumerate().skip(a + 1) {
                for (i, &ca) in Color::ALL.iter().enumerate() {
                    for (j, &cb) in Color::ALL.iter().enumerate() {
                        if i != j && (3 * i + 7 * j + a + 2 * b) % 5 == 0 {
                            bindings.push([(ca, sa), (cb, sb)]);
                        }
                    }
                }
            }
        }
        let (above, left_of) = (Relation::Above, Relation::LeftOf);
        HeldOut {
            color_shapes: Vec::new(),
            relation_shapes: Vec::new(),
            relation_triples: vec![
                (Shape::Circle, above, Shape::Triangle),
                (Shape::Square, above, Shape::Circle),
                (Shape::Diamond, above, Shape::Square),
                (Shape::Triangle, left_of, Shape::Diamond),
                (Shape::Circle, left_of, Shape::Square),
                (Shape::Square, left_of, Shape::Triangle),
            ],
            bindings,
        }
    }

    /// Is this binding of two colored shapes held out (in either order)?
    pub fn holds_binding(&self, a: (Color, Shape), b: (Color, Shape)) -> bool {
        self.bindings.contains(&[a, b]) || self.bindings.contains(&[b, a])
    }

    /// The first held-out binding among these colored shapes, if any.
    pub fn held_binding(&self, colored: &[(Color, Shape)]) -> Option<[(Color, Shape); 2]> {
        colored.iter().enumerate().find_map(|(i, &a)| {
            colored[i + 1..]
                .iter()
                .find(|&&b| self.holds_binding(a, b))
                .map(|&b| [a, b])
        })
    }

    /// Is this color–shape pair held out?
    pub fn holds_color(&self, color: Color, shape: Shape) -> bool {
        self.color_shapes.contains(&(color, shape))
    }

    /// Is this relation–shape pair held out?
    pub fn holds_relation(&self, relation: Relation, shape: Shape) -> bool {
        self.relation_shapes.contains(&(relation, shape))
    }

    /// Is an object of shape `a` in `relation` to one of shape `b` held out, by a
    /// relation–shape pair or a relation between the two shapes (either phrasing)?
    pub fn holds_placement(&self, a: Shape, relation: Relation, b: Shape) -> bool {
        let inverse = relation.inverse();
        self.holds_relation(relation, a)
            || self.holds_relation(inverse, b)
            || self.relation_triples.contains(&(a, relation, b))
            || self.relation_triples.contains(&(b, inverse, a))
    }

    /// The split of a prompt: held out when any clause pairs a held-out color with its
    /// shape, or places a shape in a held-out relation (either phrasing).
    pub fn split_of(&self, metadata: &Metadata) -> Split {
        let held = metadata.include.iter().any(|inc| {
            let color = inc.color.is_some_and(|c| self.holds_color(c, inc.class));
            let relation = inc
                .position
                .is_some_and(|pos| match metadata.include.get(pos.group) {
                    Some(target) => self.holds_placement(inc.class, pos.relation, target.class),
                    None => self.holds_relation(pos.relation, inc.class),
                });
            color || relation
        });
        let colored: Vec<(Color, Shape)> = metadata
            .include
            .iter()
            .filter_map(|inc| inc.color.map(|c| (c, inc.class)))
            .collect();
        if held || self.held_binding(&colored).is_some() {
            Split::HeldOut
        } else {
            Split::Train
        }
    }

    /// Does a scene show none of the held-out compositions: no held-out color on its
    /// shape, no held-out binding, and no object in a held-out relation (GenEval's
    /// `relative_position`) to an object of another shape, the pairs a position prompt
    /// names? (Objects of one shape are
    /// free, so that "four circles" stays possible with "a circle above" held out.)
    pub fn allows_scene(&self, scene: &Scene) -> bool {
        let objs = &scene.objects;
        let colors_ok = objs.iter().all(|o| !self.holds_color(o.color, o.shape));
        let colored: Vec<(Color, Shape)> = objs.iter().map(|o| (o.color, o.shape)).collect();
        colors_ok
            && self.held_binding(&colored).is_none()
            && objs.iter().all(|a| {
                objs.iter().filter(|b| b.shape != a.shape).all(|b| {
                    relative_position(
                        &a.bbox(DEFAULT_SIZE),
                        &b.bbox(DEFAULT_SIZE),
                        POSITION_MARGIN,
                    )
                    .into_iter()
                    .all(|rel| !self.holds_placement(a.shape, rel, b.shape))
                })
            })
    }
}
