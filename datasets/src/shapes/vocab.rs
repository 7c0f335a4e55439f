//! The words of the shapes world: its shapes, GenEval's ten colors with the RGB values
//! we paint them in, the background, GenEval's four relations, and the small grammar
//! (number words, articles) that every prompt and caption shares.

/// A shape the world can draw and the judge can tell apart at 64×64 after blur, noise
/// and JPEG. Every shape fills an axis-aligned square box of side `size` centred on
/// the object: a disc, a square, an upward isosceles triangle (base and height equal
/// to the box) and a diamond (the square turned by 45°, corners touching the box).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
}

impl Shape {
    /// Every shape, in the world's order.
    pub const ALL: [Shape; 4] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Diamond,
    ];

    /// The class name used in prompts and metadata (`circle`).
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Diamond => "diamond",
        }
    }

    /// The plural noun (`circles`).
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Diamond => "diamonds",
        }
    }

    /// The shape of a class name, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// GenEval's ten colors, in GenEval's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Color {
    Red,
    Orange,
    Yellow,
    Green,
    Blue,
    Purple,
    Pink,
    Brown,
    Black,
    White,
}

impl Color {
    /// The ten colors, in GenEval's order.
    pub const ALL: [Color; 10] = [
        Color::Red,
        Color::Orange,
        Color::Yellow,
        Color::Green,
        Color::Blue,
        Color::Purple,
        Color::Pink,
        Color::Brown,
        Color::Black,
        Color::White,
    ];

    /// The name used in prompts and metadata (`red`).
    pub fn name(self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Orange => "orange",
            Color::Yellow => "yellow",
            Color::Green => "green",
            Color::Blue => "blue",
            Color::Purple => "purple",
            Color::Pink => "pink",
            Color::Brown => "brown",
            Color::Black => "black",
            Color::White => "white",
        }
    }

    /// The color of a name, if it is one of GenEval's ten.
    pub fn from_name(name: &str) -> Option<Color> {
        Color::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The sRGB value objects of this color are painted in. The values are saturated,
    /// typical members of each name, spread apart in lightness and hue (Oklab) so that
    /// the mean color of a blurred, noisy, JPEG-compressed object stays nearest to its
    /// own entry: brown is a dark orange well below orange's lightness, pink is light
    /// and bluish where red is dark and yellowish, purple is darker and bluer than pink.
    /// Every color also differs from the background in luma (JPEG's Y) by at least 36
    /// levels, so that its outline survives JPEG's halved chroma resolution: that is
    /// why green is a darker green (a mid green has the background's luma).
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Color::Red => [215, 25, 30],
            Color::Orange => [255, 150, 0],
            Color::Yellow => [250, 225, 25],
            Color::Green => [20, 130, 40],
            Color::Blue => [30, 75, 225],
            Color::Purple => [125, 40, 175],
            Color::Pink => [250, 145, 205],
            Color::Brown => [115, 65, 20],
            Color::Black => [15, 15, 15],
            Color::White => [250, 250, 250],
        }
    }
}

/// The plain background: a neutral mid gray, which is none of the ten colors, sits
/// halfway in lightness between black and white (so both stand out from it) and has no
/// hue to confuse with the chromatic colors.
pub const BACKGROUND: [u8; 3] = [128, 128, 128];

/// How captions name the background color.
pub const BACKGROUND_NAME: &str = "gray";

/// GenEval's four spatial relations, in GenEval's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    LeftOf,
    RightOf,
    Above,
    Below,
}

impl Relation {
    /// The four relations, in GenEval's order.
    pub const ALL: [Relation; 4] = [
        Relation::LeftOf,
        Relation::RightOf,
        Relation::Above,
        Relation::Below,
    ];

    /// GenEval's name (`left of`), used in prompts and in `position` metadata.
    pub fn name(self) -> &'static str {
        match self {
            Relation::LeftOf => "left of",
            Relation::RightOf => "right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }

    /// The relation of a GenEval name.
    pub fn from_name(name: &str) -> Option<Relation> {
        Relation::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The relation seen from the other object (`left of` ↔ `right of`).
    pub fn inverse(self) -> Relation {
        match self {
            Relation::LeftOf => Relation::RightOf,
            Relation::RightOf => Relation::LeftOf,
            Relation::Above => Relation::Below,
            Relation::Below => Relation::Above,
        }
    }
}

/// GenEval's number words; `None` beyond ten.
pub fn number_word(n: usize) -> Option<&'static str> {
    const WORDS: [&str; 11] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    WORDS.get(n).copied()
}

/// `a`/`an` before a phrase, by its first letter (GenEval's `with_article`).
pub fn with_article(phrase: &str) -> String {
    match phrase.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {phrase}"),
        _ => format!("a {phrase}"),
    }
}
