//! The teacher's phrasing shared by captions and augmented prompts: the order objects
//! are described in, size and location words (and the object they state), noun
//! phrases, counted lists, relation phrases, and the seeded choice among equivalent
//! wordings.

use crate::rng::{Rng, mix};
use crate::shapes::judge::{POSITION_MARGIN, relative_position};
use crate::shapes::render::DEFAULT_SIZE;
use crate::shapes::scene::{MAX_SIZE, MIN_SIZE, Object, Scene};
use crate::shapes::vocab::{BACKGROUND_NAME, Color, Relation, Shape, number_word, with_article};

/// The seeded choice among wordings: a function of the scene and of what is being
/// worded (`salt`), so the same scene always reads the same.
pub(super) struct Wording(Rng);

impl Wording {
    pub(super) fn new(scene: &Scene, salt: u64) -> Wording {
        Wording(Rng::new(mix(scene.fingerprint() ^ salt)))
    }

    /// Seeded by what a caption states of the scene (each object's shape, colour, size
    /// word and place, in reading order), so that wording chosen from a caption alone
    /// reads the same as from the scene.
    pub(super) fn stated(scene: &Scene, salt: u64) -> Wording {
        let stated = reading_order(scene).iter().fold(0x57A7ED, |h, o| {
            [
                o.shape as u64,
                o.color as u64,
                region(o) as u64,
                size_class(o) as u64,
            ]
            .into_iter()
            .fold(h, |h, v| mix(h ^ v))
        });
        Wording(Rng::new(mix(stated ^ salt)))
    }

    pub(super) fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        self.0.pick(options).unwrap_or_default()
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0.below(n)
    }

    pub(super) fn shuffle<T>(&mut self, items: &mut [T]) {
        self.0.shuffle(items);
    }
}

/// The background as captions name it (`plain gray background`).
pub(super) fn background() -> String {
    format!("plain {BACKGROUND_NAME} background")
}

/// Objects in reading order: by row of the canvas's thirds, then left to right.
pub(super) fn reading_order(scene: &Scene) -> Vec<Object> {
    let mut objects = scene.objects.clone();
    objects.sort_by(|a, b| {
        third(a.center[1])
            .cmp(&third(b.center[1]))
            .then(a.center[0].total_cmp(&b.center[0]))
    });
    objects
}

/// 0, 1 or 2: which third of the canvas a coordinate falls in.
fn third(v: f64) -> u8 {
    if v < 1.0 / 3.0 {
        0
    } else if v < 2.0 / 3.0 {
        1
    } else {
        2
    }
}

/// The size words, for the thirds of the world's size range.
const SIZE_WORDS: [&str; 3] = ["small", "medium-sized", "large"];

/// Which third of the world's size range an object's size falls in (below the range:
/// the first).
fn size_class(obj: &Object) -> usize {
    let t = (obj.size - MIN_SIZE) / (MAX_SIZE - MIN_SIZE);
    if t < 1.0 / 3.0 {
        0
    } else if t < 2.0 / 3.0 {
        1
    } else {
        2
    }
}

/// `small`, `medium-sized` or `large`: the thirds of the world's size range.
pub(super) fn size_word(obj: &Object) -> &'static str {
    SIZE_WORDS[size_class(obj)]
}

/// Which of the canvas's nine regions (thirds by thirds, row-major) an object's
/// center falls in.
fn region(obj: &Object) -> usize {
    3 * usize::from(third(obj.center[1])) + usize::from(third(obj.center[0]))
}

/// Where on the canvas an object is (`in the upper left`), by the thirds it falls in.
pub(super) fn location(obj: &Object, wording: &mut Wording) -> &'static str {
    const OPTIONS: [[&str; 2]; 9] = [
        ["in the upper left", "in the top-left corner"],
        ["at the top", "near the top edge"],
        ["in the upper right", "in the top-right corner"],
        ["on the left", "at the left side"],
        ["in the center", "in the middle"],
        ["on the right", "at the right side"],
        ["in the lower left", "in the bottom-left corner"],
        ["at the bottom", "near the bottom edge"],
        ["in the lower right", "in the bottom-right corner"],
    ];
    wording.pick(&OPTIONS[region(obj)])
}

/// The places in one fixed wording, by region.
const PLACE_NAMES: [&str; 9] = [
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
];

/// The place of an object in one fixed wording (`top left`, `center`), by the thirds
/// it falls in.
pub(super) fn place_name(obj: &Object) -> &'static str {
    PLACE_NAMES[region(obj)]
}

/// The object a caption states by its place name, size word, colour and shape:
/// centred in its region, sized in the middle of its size word's third; `None` for a
/// word that is no place or size.
pub(super) fn stated_object(place: &str, size: &str, color: Color, shape: Shape) -> Option<Object> {
    let region = PLACE_NAMES.iter().position(|p| *p == place)?;
    let class = SIZE_WORDS.iter().position(|s| *s == size)?;
    let middle = |third: usize| (2 * third + 1) as f64 / 6.0;
    Some(Object {
        shape,
        color,
        center: [middle(region % 3), middle(region / 3)],
        size: MIN_SIZE + (class as f64 + 0.5) / 3.0 * (MAX_SIZE - MIN_SIZE),
    })
}

/// `red circle`, or with its size `large red circle`.
pub(super) fn noun(obj: &Object, sized: bool) -> String {
    let colored = format!("{} {}", obj.color.name(), obj.shape.name());
    if sized {
        format!("{} {colored}", size_word(obj))
    } else {
        colored
    }
}

/// The number word (`three`), `several` past ten.
pub(super) fn number(n: usize) -> &'static str {
    number_word(n).unwrap_or("several")
}

/// `a, b and c` (no serial comma, as the SFT data joins object prompts).
pub(super) fn join_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Counted groups in order of first appearance: `two red circles`, `a square`.
/// `key` gives each object's singular and plural wording.
pub(super) fn counted(objects: &[Object], key: impl Fn(&Object) -> (String, String)) -> String {
    let mut groups: Vec<((String, String), usize)> = Vec::new();
    for obj in objects {
        let k = key(obj);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, n)) => *n += 1,
            None => groups.push((k, 1)),
        }
    }
    let items: Vec<String> = groups
        .into_iter()
        .map(|((one, many), n)| match n {
            1 => with_article(&one),
            _ => format!("{} {many}", number(n)),
        })
        .collect();
    join_list(&items)
}

/// What the scene holds, as a head and, when there are shapes of several kinds, the
/// kinds counted; `shape` names an object of unknown kind: with `flat shape`,
/// (`a single flat shape`, ``), (`two diamonds`, ``), (`three flat shapes`, `: two
/// circles and a square`).
pub(super) fn inventory(objects: &[Object], shape: &str) -> (String, String) {
    let by_shape = counted(objects, |o| {
        (o.shape.name().to_owned(), o.shape.plural().to_owned())
    });
    let one_kind = objects
        .iter()
        .all(|o| Some(o.shape) == objects.first().map(|f| f.shape));
    match objects.len() {
        1 => (format!("a single {shape}"), String::new()),
        _ if one_kind => (by_shape, String::new()),
        n => (format!("{} {shape}s", number(n)), format!(": {by_shape}")),
    }
}

/// How `a` lies relative to `b` as the judge sees it (`above and to the left of`), or
/// `None` when no GenEval relation holds.
pub(super) fn relation_phrase(a: &Object, b: &Object) -> Option<String> {
    let rels = relative_position(
        &a.bbox(DEFAULT_SIZE),
        &b.bbox(DEFAULT_SIZE),
        POSITION_MARGIN,
    );
    let word = |r: Relation| match r {
        Relation::LeftOf => "to the left of",
        Relation::RightOf => "to the right of",
        Relation::Above => "above",
        Relation::Below => "below",
    };
    let vertical = rels
        .iter()
        .find(|r| matches!(r, Relation::Above | Relation::Below));
    let horizontal = rels
        .iter()
        .find(|r| matches!(r, Relation::LeftOf | Relation::RightOf));
    match (vertical, horizontal) {
        (Some(&v), Some(&h)) => Some(format!("{} and {}", word(v), word(h))),
        (Some(&r), None) | (None, Some(&r)) => Some(word(r).to_owned()),
        (None, None) => None,
    }
}

/// The first letter in upper case.
pub(super) fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
