//! Scene graphs as JSON, the form they take in tables:
//! `{"objects": [{"shape": "circle", "color": "red", "center": [0.3, 0.6], "size": 0.25}, …]}`.

use super::ShapesError;
use super::scene::{Object, Scene};
use super::vocab::{Color, Shape};
use serde_json::{Value, json};

impl Scene {
    pub fn to_json(&self) -> Value {
        let objects: Vec<Value> = self
            .objects
            .iter()
            .map(|o| {
                json!({
                    "shape": o.shape.name(),
                    "color": o.color.name(),
                    "center": [o.center[0], o.center[1]],
                    "size": o.size,
                })
            })
            .collect();
        json!({ "objects": objects })
    }

    pub fn from_json(value: &Value) -> Result<Scene, ShapesError> {
        let bad = |what: &str| ShapesError::Metadata(format!("scene graph: {what}"));
        let objects = value["objects"]
            .as_array()
            .ok_or_else(|| bad("no `objects` list"))?;
        let mut out = Vec::with_capacity(objects.len());
        for (i, o) in objects.iter().enumerate() {
            let text = |k: &str| {
                o[k].as_str()
                    .ok_or_else(|| bad(&format!("object {i}: no `{k}`")))
            };
            let num = |v: &Value, k: &str| {
                v.as_f64()
                    .ok_or_else(|| bad(&format!("object {i}: bad `{k}`")))
            };
            let shape = Shape::from_name(text("shape")?)
                .ok_or_else(|| bad(&format!("object {i}: unknown shape")))?;
            let color = Color::from_name(text("color")?)
                .ok_or_else(|| bad(&format!("object {i}: unknown color")))?;
            out.push(Object {
                shape,
                color,
                center: [
                    num(&o["center"][0], "center")?,
                    num(&o["center"][1], "center")?,
                ],
                size: num(&o["size"], "size")?,
            });
        }
        Ok(Scene { objects: out })
    }
}

#[cfg(test)]
mod tests {
    use super::super::generate::SceneGenerator;
    use super::*;

    #[test]
    fn scenes_round_trip_through_json() {
        let mut g = SceneGenerator::new(5);
        for _ in 0..20 {
            let s = g.random().unwrap();
            assert_eq!(Scene::from_json(&s.to_json()).unwrap(), s);
        }
        assert!(Scene::from_json(&json!({"objects": [{"shape": "hexagon"}]})).is_err());
    }
}
