//! Run keys, and why a node is stale.
//!
//! A node's run key is the digest of [`KeyInputs`]: stage kind and version, canonical
//! config, the content digests of its inputs, the digests of external files it reads,
//! and its seed when the stage uses one. All of it is known before the node runs. The
//! store remembers the inputs behind every key, so `plan` can say what changed.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Bumped if the key format itself changes.
pub const ENGINE_KEY_VERSION: u32 = 1;

/// What a run key is the hash of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyInputs {
    pub engine: u32,
    pub stage: String,
    pub stage_version: u32,
    pub config: Value,
    /// Input name → content digests of the artifacts bound to it.
    pub inputs: BTreeMap<String, Vec<Digest>>,
    /// Label → digest of files outside the store the stage reads.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub externals: BTreeMap<String, Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl KeyInputs {
    pub fn run_key(&self) -> Digest {
        Digest::of_json(self)
    }

    /// Why a node keyed by `self` is not the one keyed by `previous`, in words.
    pub fn changes_since(&self, previous: &KeyInputs) -> Vec<String> {
        let mut out = Vec::new();
        if self.stage != previous.stage {
            out.push(format!(
                "stage kind changed: {} → {}",
                previous.stage, self.stage
            ));
        } else if self.stage_version != previous.stage_version {
            out.push(format!(
                "stage version changed: {} v{} → v{}",
                self.stage, previous.stage_version, self.stage_version
            ));
        }
        if self.engine != previous.engine {
            out.push(format!(
                "engine key format changed: {} → {}",
                previous.engine, self.engine
            ));
        }
        diff_values("config", &previous.config, &self.config, &mut out);
        diff_maps(
            "input",
            &previous.inputs,
            &self.inputs,
            |d| d.iter().map(Digest::short).collect::<Vec<_>>().join(","),
            &mut out,
        );
        diff_maps(
            "external",
            &previous.externals,
            &self.externals,
            Digest::short,
            &mut out,
        );
        if self.seed != previous.seed {
            out.push(format!(
                "seed changed: {} → {}",
                fmt_opt(previous.seed),
                fmt_opt(self.seed)
            ));
        }
        out
    }
}

fn fmt_opt(v: Option<u64>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}

fn diff_maps<V: PartialEq>(
    what: &str,
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    show: impl Fn(&V) -> String,
    out: &mut Vec<String>,
) {
    for (name, v) in new {
        match old.get(name) {
            None => out.push(format!("{what} `{name}` added")),
            Some(o) if o != v => out.push(format!(
                "{what} `{name}` changed: {} → {}",
                show(o),
                show(v)
            )),
            _ => {}
        }
    }
    for name in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push(format!("{what} `{name}` removed"));
    }
}

/// Config differences as `config key `a.b` changed: 1 → 2`, one line per leaf.
fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(&p, x, y, out),
                    (None, Some(y)) => out.push(format!("{} added: {}", key_name(&p), short(y))),
                    (Some(x), None) => {
                        out.push(format!("{} removed (was {})", key_name(&p), short(x)))
                    }
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(format!(
            "{} changed: {} → {}",
            key_name(path),
            short(a),
            short(b)
        )),
        _ => {}
    }
}

fn key_name(path: &str) -> String {
    format!("config key `{}`", path.trim_start_matches("config."))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> KeyInputs {
        KeyInputs {
            engine: ENGINE_KEY_VERSION,
            stage: "table.filter".into(),
            stage_version: 1,
            config: json!({"where": "a > 1", "sample": {"fraction": 0.5}}),
            inputs: [("input".to_string(), vec![Digest::of_bytes(b"x")])].into(),
            externals: BTreeMap::new(),
            seed: None,
        }
    }

    #[test]
    fn each_component_changes_the_key_and_is_explained() {
        let base = key();
        assert!(base.changes_since(&base).is_empty());

        let mut c = key();
        c.config["sample"]["fraction"] = json!(0.25);
        assert_ne!(c.run_key(), base.run_key());
        assert_eq!(
            c.changes_since(&base),
            vec!["config key `sample.fraction` changed: 0.5 → 0.25"]
        );

        let mut v = key();
        v.stage_version = 2;
        assert_ne!(v.run_key(), base.run_key());
        assert_eq!(
            v.changes_since(&base),
            vec!["stage version changed: table.filter v1 → v2"]
        );

        let mut i = key();
        i.inputs
            .insert("input".into(), vec![Digest::of_bytes(b"y")]);
        assert_ne!(i.run_key(), base.run_key());
        assert!(i.changes_since(&base)[0].starts_with("input `input` changed"));

        let mut e = key();
        e.externals
            .insert("file data.csv".into(), Digest::of_bytes(b"z"));
        assert_ne!(e.run_key(), base.run_key());
        assert_eq!(
            e.changes_since(&base),
            vec!["external `file data.csv` added"]
        );

        let mut s = key();
        s.seed = Some(3);
        assert_ne!(s.run_key(), base.run_key());
        assert_eq!(s.changes_since(&base), vec!["seed changed: none → 3"]);
    }
}
