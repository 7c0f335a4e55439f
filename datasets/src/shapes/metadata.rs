//! GenEval-style metadata records (`evaluation_metadata.jsonl` lines) over the shapes
//! world: the task tag, the objects an image must include (class, count, optional color
//! and position) and the counts it must stay below, and the prompt. Written and read in
//! exactly GenEval's JSON shape, field names and order.

use super::ShapesError;
use super::vocab::{Color, Relation, Shape};
use serde_json::Value;

/// A task family: GenEval's six, and `scene`, the whole-scene record the teacher gives
/// for a free-form scene (not a GenEval task; summaries keep it out of the overall).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    SingleObject,
    TwoObject,
    Counting,
    Colors,
    Position,
    ColorAttr,
    Scene,
}

impl Task {
    /// GenEval's six tasks, in GenEval's order.
    pub const GENEVAL: [Task; 6] = [
        Task::SingleObject,
        Task::TwoObject,
        Task::Counting,
        Task::Colors,
        Task::Position,
        Task::ColorAttr,
    ];

    /// The `tag` value (`single_object`, …, `scene`).
    pub fn tag(self) -> &'static str {
        match self {
            Task::SingleObject => "single_object",
            Task::TwoObject => "two_object",
            Task::Counting => "counting",
            Task::Colors => "colors",
            Task::Position => "position",
            Task::ColorAttr => "color_attr",
            Task::Scene => "scene",
        }
    }

    /// The task of a `tag` value.
    pub fn from_tag(tag: &str) -> Option<Task> {
        Task::GENEVAL
            .into_iter()
            .chain([Task::Scene])
            .find(|t| t.tag() == tag)
    }
}

/// Where an included group must lie: `relation` of the group matched by include clause
/// number `group` (GenEval's `position: [relation, group_index]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub relation: Relation,
    /// The index of the include clause whose objects are the reference.
    pub group: usize,
}

/// An include clause: at least `count` objects of `class`, of `color` if given, placed
/// by `position` if given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Include {
    pub class: Shape,
    pub count: usize,
    pub color: Option<Color>,
    pub position: Option<Position>,
}

impl Include {
    /// `count` objects of `class`, with no color or position.
    pub fn new(class: Shape, count: usize) -> Include {
        Include {
            class,
            count,
            color: None,
            position: None,
        }
    }
}

/// An exclude clause: fewer than `count` objects of `class`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exclude {
    pub class: Shape,
    pub count: usize,
}

/// One GenEval-style record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub tag: Task,
    /// Met together (AND), in order: a position refers to an earlier clause.
    pub include: Vec<Include>,
    /// Empty when the record has none (the key is then left out, as in GenEval).
    pub exclude: Vec<Exclude>,
    /// The prompt text (`a photo of …`).
    pub prompt: String,
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

impl Metadata {
    /// The record as one JSON line, byte for byte as GenEval's `json.dumps` writes it
    /// (`", "` and `": "` separators, keys in GenEval's order).
    pub fn to_json(&self) -> String {
        let include: Vec<String> = self
            .include
            .iter()
            .map(|inc| {
                let mut s = format!(
                    "{{\"class\": {}, \"count\": {}",
                    json_string(inc.class.name()),
                    inc.count
                );
                if let Some(color) = inc.color {
                    s += &format!(", \"color\": {}", json_string(color.name()));
                }
                if let Some(pos) = inc.position {
                    s += &format!(
                        ", \"position\": [{}, {}]",
                        json_string(pos.relation.name()),
                        pos.group
                    );
                }
                s + "}"
            })
            .collect();
        let mut out = format!(
            "{{\"tag\": {}, \"include\": [{}]",
            json_string(self.tag.tag()),
            include.join(", ")
        );
        if !self.exclude.is_empty() {
            let exclude: Vec<String> = self
                .exclude
                .iter()
                .map(|e| {
                    format!(
                        "{{\"class\": {}, \"count\": {}}}",
                        json_string(e.class.name()),
                        e.count
                    )
                })
                .collect();
            out += &format!(", \"exclude\": [{}]", exclude.join(", "));
        }
        out + &format!(", \"prompt\": {}}}", json_string(&self.prompt))
    }

    /// Reads one JSON record. Unknown keys, classes other than our shapes, colors other
    /// than GenEval's ten, counts below one and positions that point at a later clause
    /// are errors that say which.
    pub fn from_json(text: &str) -> Result<Metadata, ShapesError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ShapesError::Metadata(format!("not JSON: {e}")))?;
        let obj = as_object(&value, "record")?;
        known_keys(obj, &["tag", "include", "exclude", "prompt"], "record")?;
        let tag = str_field(obj, "tag", "record")?;
        let tag = Task::from_tag(tag).ok_or_else(|| bad(format!("unknown tag {tag:?}")))?;
        let include = list_field(obj, "include")?
            .iter()
            .enumerate()
            .map(|(i, v)| parse_include(v, i))
            .collect::<Result<Vec<_>, _>>()?;
        let exclude = match obj.get("exclude") {
            None => Vec::new(),
            Some(_) => list_field(obj, "exclude")?
                .iter()
                .map(|v| {
                    let where_ = "exclude clause";
                    let clause = as_object(v, where_)?;
                    known_keys(clause, &["class", "count"], where_)?;
                    Ok(Exclude {
                        class: class_field(clause, where_)?,
                        count: count_field(clause, where_)?,
                    })
                })
                .collect::<Result<Vec<_>, ShapesError>>()?,
        };
        let prompt = str_field(obj, "prompt", "record")?.to_owned();
        Ok(Metadata {
            tag,
            include,
            exclude,
            prompt,
        })
    }
}

type Object = serde_json::Map<String, Value>;

fn bad(message: String) -> ShapesError {
    ShapesError::Metadata(message)
}

fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Object, ShapesError> {
    value
        .as_object()
        .ok_or_else(|| bad(format!("{what} is not a JSON object")))
}

fn known_keys(obj: &Object, keys: &[&str], what: &str) -> Result<(), ShapesError> {
    match obj.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(key) => Err(bad(format!("{what} has unknown key {key:?}"))),
        None => Ok(()),
    }
}

fn str_field<'a>(obj: &'a Object, key: &str, what: &str) -> Result<&'a str, ShapesError> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{what} needs a string {key:?}")))
}

fn list_field<'a>(obj: &'a Object, key: &str) -> Result<&'a Vec<Value>, ShapesError> {
    obj.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("record needs a list {key:?}")))
}

fn class_field(obj: &Object, what: &str) -> Result<Shape, ShapesError> {
    let name = str_field(obj, "class", what)?;
    Shape::from_name(name).ok_or_else(|| {
        bad(format!(
            "{what}: class {name:?} is not a shape of this world"
        ))
    })
}

fn count_field(obj: &Object, what: &str) -> Result<usize, ShapesError> {
    obj.get("count")
        .and_then(Value::as_u64)
        .filter(|&n| n >= 1)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| bad(format!("{what} needs a \"count\" of at least 1")))
}

fn parse_include(value: &Value, index: usize) -> Result<Include, ShapesError> {
    let what = format!("include clause {index}");
    let obj = as_object(value, &what)?;
    known_keys(obj, &["class", "count", "color", "position"], &what)?;
    let color = match obj.get("color") {
        None => None,
        Some(_) => {
            let name = str_field(obj, "color", &what)?;
            Some(
                Color::from_name(name)
                    .ok_or_else(|| bad(format!("{what}: unknown color {name:?}")))?,
            )
        }
    };
    let position = match obj.get("position") {
        None => None,
        Some(v) => {
            let pair = v.as_array().filter(|p| p.len() == 2);
            let relation = pair
                .and_then(|p| p[0].as_str())
                .and_then(Relation::from_name);
            let group = pair
                .and_then(|p| p[1].as_u64())
                .and_then(|g| usize::try_from(g).ok())
                .filter(|&g| g < index);
            match (relation, group) {
                (Some(relation), Some(group)) => Some(Position { relation, group }),
                _ => {
                    return Err(bad(format!(
                        "{what}: \"position\" must be [relation, index of an earlier clause]"
                    )));
                }
            }
        }
    };
    Ok(Include {
        class: class_field(obj, &what)?,
        count: count_field(obj, &what)?,
        color,
        position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_geneval_lines_byte_for_byte() {
        for line in [
            r#"{"tag": "single_object", "include": [{"class": "circle", "count": 1}], "prompt": "a photo of a circle"}"#,
            r#"{"tag": "counting", "include": [{"class": "square", "count": 2}], "exclude": [{"class": "square", "count": 3}], "prompt": "a photo of two squares"}"#,
            r#"{"tag": "position", "include": [{"class": "diamond", "count": 1}, {"class": "circle", "count": 1, "position": ["right of", 0]}], "prompt": "a photo of a circle right of a diamond"}"#,
            r#"{"tag": "color_attr", "include": [{"class": "triangle", "count": 1, "color": "orange"}, {"class": "circle", "count": 1, "color": "white"}], "prompt": "a photo of an orange triangle and a white circle"}"#,
        ] {
            let meta = Metadata::from_json(line).expect(line);
            assert_eq!(meta.to_json(), line);
        }
    }

    #[test]
    fn rejects_what_is_not_ours() {
        for (line, needle) in [
            (
                r#"{"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "x"}"#,
                "bench",
            ),
            (
                r#"{"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "teal"}], "prompt": "x"}"#,
                "teal",
            ),
            (
                r#"{"tag": "counting", "include": [{"class": "circle", "count": 0}], "prompt": "x"}"#,
                "count",
            ),
            (
                r#"{"tag": "position", "include": [{"class": "circle", "count": 1, "position": ["above", 0]}], "prompt": "x"}"#,
                "earlier",
            ),
            (
                r#"{"tag": "position", "include": [], "prompt": "x", "extra": 1}"#,
                "extra",
            ),
            (r#"{"tag": "nope", "include": [], "prompt": "x"}"#, "nope"),
        ] {
            let err = Metadata::from_json(line).expect_err(line).to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }
}
