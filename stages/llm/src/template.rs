//! Versioned prompt templates: a name and version (recorded in provenance and in each
//! request's key), a system and a user text with `{placeholder}`s filled from the row.
//! `{{` and `}}` are literal braces. A recipe may replace a task's built-in template;
//! unknown placeholders are errors before anything runs.

use super::config::TemplateConfig;

/// A task's built-in template.
pub struct Builtin {
    pub name: &'static str,
    pub version: u32,
    pub system: &'static str,
    pub user: &'static str,
}

#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Slot(&'static str),
}

/// A parsed template, ready to fill.
#[derive(Debug)]
pub struct Template {
    pub name: String,
    pub version: u32,
    system: Vec<Piece>,
    user: Vec<Piece>,
}

impl Template {
    /// The built-in template, or the recipe's replacement; `slots` are the placeholders
    /// the task can fill.
    pub fn new(
        builtin: &Builtin,
        over: &TemplateConfig,
        slots: &[&'static str],
    ) -> Result<Template, String> {
        let changed = over.system.is_some() || over.user.is_some();
        let version = match (over.version, changed) {
            (Some(v), _) => v,
            (None, false) => builtin.version,
            (None, true) => {
                return Err(
                    "template: give `version` when replacing the text (it is recorded in provenance and in every request key)"
                        .into(),
                );
            }
        };
        let parse = |field: &str, text: &str| {
            parse(text, slots).map_err(|e| format!("template.{field}: {e}"))
        };
        Ok(Template {
            name: over
                .name
                .clone()
                .unwrap_or_else(|| builtin.name.to_string()),
            version,
            system: parse("system", over.system.as_deref().unwrap_or(builtin.system))?,
            user: parse("user", over.user.as_deref().unwrap_or(builtin.user))?,
        })
    }

    pub fn system(&self, fill: impl Fn(&str) -> String) -> String {
        render(&self.system, &fill)
    }

    pub fn user(&self, fill: impl Fn(&str) -> String) -> String {
        render(&self.user, &fill)
    }
}

fn render(pieces: &[Piece], fill: &impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Slot(name) => out.push_str(&fill(name)),
        }
    }
    out
}

fn parse(text: &str, slots: &[&'static str]) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        literal.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            literal.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            return Err("a lone `}` (write `}}` for a literal brace)".into());
        } else {
            let end = tail
                .find('}')
                .ok_or("an unclosed `{` (write `{{` for a literal brace)")?;
            let name = &tail[1..end];
            let slot = slots.iter().find(|s| **s == name).ok_or_else(|| {
                format!(
                    "unknown placeholder `{{{name}}}`; this task fills {}",
                    slots
                        .iter()
                        .map(|s| format!("{{{s}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Slot(slot));
            rest = &tail[end + 1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTIN: Builtin = Builtin {
        name: "t",
        version: 3,
        system: "You describe {id}.",
        user: "Prompt: {prompt} {{literal}}",
    };

    #[test]
    fn fills_placeholders_and_keeps_literal_braces() {
        let t = Template::new(&BUILTIN, &TemplateConfig::default(), &["id", "prompt"]).unwrap();
        assert_eq!((t.name.as_str(), t.version), ("t", 3));
        assert_eq!(t.system(|s| s.to_uppercase()), "You describe ID.");
        assert_eq!(t.user(|s| format!("<{s}>")), "Prompt: <prompt> {literal}");
    }

    #[test]
    fn overrides_need_a_version_and_known_placeholders() {
        let mut over = TemplateConfig {
            user: Some("Say {prompt}".into()),
            ..TemplateConfig::default()
        };
        let e = Template::new(&BUILTIN, &over, &["prompt"]).unwrap_err();
        assert!(e.contains("give `version`"), "{e}");
        over.version = Some(4);
        over.name = Some("mine".into());
        let t = Template::new(&BUILTIN, &over, &["id", "prompt"]).unwrap();
        assert_eq!((t.name.as_str(), t.version), ("mine", 4));
        assert_eq!(t.user(|_| "x".into()), "Say x");
        over.user = Some("Say {promt}".into());
        let e = Template::new(&BUILTIN, &over, &["id", "prompt"]).unwrap_err();
        assert_eq!(
            e,
            "template.user: unknown placeholder `{promt}`; this task fills {id}, {prompt}"
        );
        over.user = Some("JSON {\"a\": 1}".into());
        assert!(Template::new(&BUILTIN, &over, &["id"]).is_err());
        over.user = Some("a } b".into());
        assert!(
            Template::new(&BUILTIN, &over, &["id"])
                .unwrap_err()
                .contains("lone")
        );
    }
}
