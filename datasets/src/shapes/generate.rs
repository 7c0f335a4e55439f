//! The seeded scene generator: random scenes of one to four objects (SFT data), and
//! scenes built to meet a GenEval-style record (counts, colors, clear positions,
//! excludes), both avoiding held-out pairs when asked. Objects never overlap and keep
//! [`GAP`] between their boxes. Objects are placed freely (sizes and positions drawn
//! from continuous ranges) or on a [`Lattice`].

use super::ShapesError;
use super::judge::{POSITION_MARGIN, direction};
use super::metadata::{Metadata, Position};
use super::render::DEFAULT_SIZE;
use super::scene::{GAP, MARGIN, MAX_SIZE, MIN_SIZE, Object, Scene};
use super::split::HeldOut;
use super::vocab::{Color, Relation, Shape};
use crate::rng::Rng;

/// Whole-scene layout attempts before giving up.
const ATTEMPTS: usize = 200;
/// Candidate positions per object within an attempt.
const TRIES: usize = 100;
/// Draws of shapes for a random scene.
const DRAWS: usize = 20;
/// A position clause is laid out with its relation's component of GenEval's direction
/// at least this large and the other component at most `1 - CLEAR`, far from the
/// judge's 0.5 thresholds on either side.
const CLEAR: f64 = 0.75;

/// What one object must be: its shape, its color if fixed, the include clause it
/// belongs to and the position that clause asks for.
struct Spec {
    shape: Shape,
    color: Option<Color>,
    clause: usize,
    position: Option<Position>,
}

/// A layout on a lattice: the canvas cut into `cells`×`cells` squares, every object
/// `object_cells` cells on a side with its box on cell boundaries (touching the canvas
/// edge allowed). A patch tokenizer whose patches are aligned with the cells then sees
/// an object of a given shape and color as the same patches wherever it stands, which
/// makes images far easier to learn for a small model. `slots` restricts the cells a
/// box may start at (on either axis): one per third of the canvas makes the captions'
/// location words ("in the upper left") name exactly one place. With `cells` a power
/// of two the places are exact binary fractions, so the renders of one object at two
/// places are the same pixels (otherwise rounding moves an edge pixel by a level).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lattice {
    pub cells: u32,
    pub object_cells: u32,
    /// The cells a box may start at; empty: every cell where the object fits.
    pub slots: Vec<u32>,
}

impl Lattice {
    /// Checks that objects fit with room to arrange two of them in a row.
    pub fn validate(&self) -> Result<(), ShapesError> {
        if self.object_cells == 0 || 2 * self.object_cells + 1 > self.cells {
            return Err(ShapesError::Layout(format!(
                "a lattice of {} cells cannot hold two objects of {} cells with a cell between",
                self.cells, self.object_cells
            )));
        }
        if let Some(slot) = self
            .slots
            .iter()
            .find(|&&s| s + self.object_cells > self.cells)
        {
            return Err(ShapesError::Layout(format!(
                "an object of {} cells starting at cell {slot} leaves the lattice of {} cells",
                self.object_cells, self.cells
            )));
        }
        Ok(())
    }

    /// The cells a box may start at.
    fn starts(&self) -> Vec<u32> {
        if self.slots.is_empty() {
            (0..=self.cells - self.object_cells).collect()
        } else {
            self.slots.clone()
        }
    }

    /// The object's side, a fraction of the canvas.
    fn size(&self) -> f64 {
        f64::from(self.object_cells) / f64::from(self.cells)
    }
}

/// Makes scenes from a seed; the same seed and calls give the same scenes.
#[derive(Clone, Debug)]
pub struct SceneGenerator {
    rng: Rng,
    held_out: HeldOut,
    lattice: Option<Lattice>,
}

impl SceneGenerator {
    /// A generator seeded with `seed`, avoiding nothing.
    pub fn new(seed: u64) -> SceneGenerator {
        SceneGenerator {
            rng: Rng::new(seed),
            held_out: HeldOut::default(),
            lattice: None,
        }
    }

    /// Places every object on `lattice` (checked with [`Lattice::validate`] first).
    pub fn on_lattice(mut self, lattice: Lattice) -> SceneGenerator {
        self.lattice = Some(lattice);
        self
    }

    /// Keeps every scene free of these held-out pairs (for training data).
    pub fn avoiding(mut self, held_out: HeldOut) -> SceneGenerator {
        self.held_out = held_out;
        self
    }

    /// A random scene: one to four objects of random shapes, colors and sizes. When
    /// held-out relations leave a draw of shapes no layout, the shapes are drawn again.
    pub fn random(&mut self) -> Result<Scene, ShapesError> {
        let mut last = None;
        for _ in 0..DRAWS {
            let n = 1 + self.rng.below(4);
            let specs: Vec<Spec> = (0..n)
                .map(|clause| Spec {
                    shape: Shape::ALL[self.rng.below(Shape::ALL.len())],
                    color: None,
                    clause,
                    position: None,
                })
                .collect();
            match self.place(&specs, None) {
                Err(ShapesError::Layout(e)) => last = Some(e),
                done => return done,
            }
        }
        Err(ShapesError::Layout(last.unwrap_or_default()))
    }

    /// A scene that meets `metadata` exactly: `count` objects per include clause (of
    /// its color, or random colors), positioned objects clearly in their relation to
    /// every object of the target group, and nothing else (so every exclude holds).
    pub fn for_metadata(&mut self, metadata: &Metadata) -> Result<Scene, ShapesError> {
        let colored: Vec<(Color, Shape)> = metadata
            .include
            .iter()
            .filter_map(|inc| inc.color.map(|c| (c, inc.class)))
            .collect();
        if let Some([a, b]) = self.held_out.held_binding(&colored) {
            return Err(ShapesError::HeldOut(format!(
                "{:?} binds a {} {} and a {} {}, a held-out binding",
                metadata.prompt,
                a.0.name(),
                a.1.name(),
                b.0.name(),
                b.1.name()
            )));
        }
        let mut specs = Vec::new();
        for (clause, inc) in metadata.include.iter().enumerate() {
            if let Some(color) = inc
                .color
                .filter(|&c| self.held_out.holds_color(c, inc.class))
            {
                return Err(ShapesError::HeldOut(format!(
                    "{:?} asks for a {} {}, a held-out pair",
                    metadata.prompt,
                    color.name(),
                    inc.class.name()
                )));
            }
            specs.extend((0..inc.count).map(|_| Spec {
                shape: inc.class,
                color: inc.color,
                clause,
                position: inc.position,
            }));
        }
        self.place(&specs, Some(metadata))
    }

    fn place(&mut self, specs: &[Spec], metadata: Option<&Metadata>) -> Result<Scene, ShapesError> {
        for _ in 0..ATTEMPTS {
            let Some(scene) = self.try_place(specs)? else {
                continue;
            };
            let meets = metadata.is_none_or(|m| scene.satisfies(m, DEFAULT_SIZE).correct);
            if meets && self.held_out.allows_scene(&scene) {
                return Ok(scene);
            }
        }
        let what = metadata.map_or("a random scene".to_owned(), |m| format!("{:?}", m.prompt));
        Err(ShapesError::Layout(format!(
            "no layout found for {what} in {ATTEMPTS} attempts"
        )))
    }

    /// One attempt: objects placed in order at random free positions; `None` when an
    /// object finds no place.
    fn try_place(&mut self, specs: &[Spec]) -> Result<Option<Scene>, ShapesError> {
        let mut objects: Vec<Object> = Vec::with_capacity(specs.len());
        for spec in specs {
            let color = match spec.color {
                Some(color) => color,
                None => self.random_color(spec.shape)?,
            };
            let size = match &self.lattice {
                Some(lattice) => lattice.size(),
                None => self.rng.uniform(MIN_SIZE, MAX_SIZE),
            };
            let targets: Vec<&Object> = match spec.position {
                Some(pos) => objects
                    .iter()
                    .zip(specs)
                    .filter(|(_, s)| s.clause == pos.group)
                    .map(|(o, _)| o)
                    .collect(),
                None => Vec::new(),
            };
            let placed = (0..TRIES).find_map(|_| {
                let obj = Object {
                    shape: spec.shape,
                    color,
                    center: [self.coordinate(size), self.coordinate(size)],
                    size,
                };
                let free = objects.iter().all(|o| o.gap(&obj) >= GAP);
                let placed_well = spec
                    .position
                    .is_none_or(|pos| targets.iter().all(|t| clearly(pos.relation, &obj, t)));
                (free && placed_well).then_some(obj)
            });
            match placed {
                Some(obj) => objects.push(obj),
                None => return Ok(None),
            }
        }
        Ok(Some(Scene { objects }))
    }

    /// A random centre coordinate for an object of side `size`: anywhere [`MARGIN`] clear
    /// of the edges, or on the lattice.
    fn coordinate(&mut self, size: f64) -> f64 {
        match &self.lattice {
            Some(l) => {
                let starts = l.starts();
                let first = starts[self.rng.below(starts.len())];
                (f64::from(first) + f64::from(l.object_cells) / 2.0) / f64::from(l.cells)
            }
            None => self
                .rng
                .uniform(MARGIN + size / 2.0, 1.0 - MARGIN - size / 2.0),
        }
    }

    fn random_color(&mut self, shape: Shape) -> Result<Color, ShapesError> {
        let allowed: Vec<Color> = Color::ALL
            .into_iter()
            .filter(|&c| !self.held_out.holds_color(c, shape))
            .collect();
        self.rng.pick(&allowed).ok_or_else(|| {
            ShapesError::HeldOut(format!("every color of the {} is held out", shape.name()))
        })
    }
}

/// Is `a` clearly `relation` of `b`, with margin to spare on the judge's thresholds?
fn clearly(relation: Relation, a: &Object, b: &Object) -> bool {
    let Some([dx, dy]) = direction(
        &a.bbox(DEFAULT_SIZE),
        &b.bbox(DEFAULT_SIZE),
        POSITION_MARGIN,
    ) else {
        return false;
    };
    let (along, across) = match relation {
        Relation::LeftOf => (-dx, dy),
        Relation::RightOf => (dx, dy),
        Relation::Above => (-dy, dx),
        Relation::Below => (dy, dx),
    };
    along >= CLEAR && across.abs() <= 1.0 - CLEAR
}
