//! The questions a VLM judge is asked about one generated image, each ending in
//! ReasonGen-R1's strict `\boxed{1}` / `\boxed{0}` verdict and opening with the
//! template's sentence `You are given a text prompt: "{prompt}" ` (the prompt without a
//! leading "A photo of ", as [`crate::vlm::judge_prompt`] gives it), so that a judge
//! keyed on the prompt (the shapes VLM) recognises it:
//!
//! - GenEval and the shapes world: the checks of the prompt's GenEval record, clause
//!   by clause ([`geneval_question`]): which objects must be there and how many,
//!   which colour, which position relative to which object, and what must be absent
//!   (an include of N with an exclude of N + 1 of the same class reads "exactly N").
//! - DPG-Bench and T2I-CompBench: ReasonGen-R1's match question ([`match_question`]).

use crate::vlm::{judge_prompt, judge_text};
use serde::Deserialize;

/// One question: the text before and after the image, and the task or category it
/// scores under.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    pub tag: String,
    pub before: String,
    pub after: String,
}

/// A GenEval record (`evaluation_metadata.jsonl`'s format, the shapes world's too).
#[derive(Debug, Deserialize)]
struct Record {
    tag: String,
    include: Vec<Clause>,
    #[serde(default)]
    exclude: Vec<Clause>,
}

#[derive(Debug, Deserialize)]
struct Clause {
    class: String,
    count: u32,
    #[serde(default)]
    color: Option<String>,
    /// (relation, index of the include clause it is relative to).
    #[serde(default)]
    position: Option<(String, usize)>,
}

/// The sentence that opens every question, as ReasonGen-R1's template has it.
fn opening(prompt: &str) -> String {
    format!(
        "You are given a text prompt: \"{}\" \nBelow is one generated image:\n",
        judge_prompt(prompt)
    )
}

const CLOSING: &str = "\n\nBe extremly strict and precise:\nOnly if the image meets every requirement, respond with: \\boxed{1}\nOtherwise, respond with: \\boxed{0}\n\nReason before your final boxed answer. Only one number should appear inside the box.";

/// ReasonGen-R1's match question for `prompt`, scored under `tag`.
pub fn match_question(prompt: &str, tag: &str) -> Question {
    let (before, after) = judge_text(prompt);
    Question {
        tag: tag.to_string(),
        before,
        after,
    }
}

/// The question checking an image against the GenEval record `record` (JSON) of
/// `prompt`; `Err` says what is wrong with the record.
pub fn geneval_question(prompt: &str, record: &str) -> Result<Question, String> {
    let r: Record =
        serde_json::from_str(record).map_err(|e| format!("not a GenEval record: {e}"))?;
    if r.include.is_empty() {
        return Err("the GenEval record includes nothing".into());
    }
    let mut lines = Vec::new();
    let mut exactly = vec![false; r.include.len()];
    for x in &r.exclude {
        match r
            .include
            .iter()
            .position(|c| c.class == x.class && c.count + 1 == x.count)
        {
            Some(i) => exactly[i] = true,
            None if x.count <= 1 => lines.push(format!("- There is no {}.", x.class)),
            None => lines.push(format!(
                "- There are fewer than {} instances of {}.",
                x.count, x.class
            )),
        }
    }
    let includes = r
        .include
        .iter()
        .zip(exactly)
        .map(|(c, exactly)| include_line(c, exactly, &r.include))
        .collect::<Result<Vec<_>, _>>()?;
    lines.splice(0..0, includes);
    Ok(Question {
        before: opening(prompt),
        after: format!(
            "\n\nThe prompt asks for exactly this (GenEval task `{}`):\n{}{CLOSING}",
            r.tag,
            lines.join("\n")
        ),
        tag: r.tag,
    })
}

/// One include clause as a requirement.
fn include_line(c: &Clause, exactly: bool, all: &[Clause]) -> Result<String, String> {
    if c.count == 0 {
        return Err(format!("the record asks for 0 × {}", c.class));
    }
    let one = c.count == 1;
    let mut line = match (one, exactly) {
        (true, false) => format!("- There is {} {}", article(&c.class), c.class),
        (true, true) => format!("- There is exactly one {}", c.class),
        (false, false) => format!("- There are at least {} instances of {}", c.count, c.class),
        (false, true) => format!("- There are exactly {} instances of {}", c.count, c.class),
    };
    let subject = if one { "it is" } else { "all of them are" };
    if let Some(color) = &c.color {
        line += &format!(", and {subject} {color}");
    }
    if let Some((relation, group)) = &c.position {
        let target = all.get(*group).ok_or_else(|| {
            format!(
                "the position of {} refers to include clause {group}, which the record lacks",
                c.class
            )
        })?;
        let words = match relation.as_str() {
            "left of" => "to the left of",
            "right of" => "to the right of",
            "above" => "above",
            "below" => "below",
            other => return Err(format!("unknown relation `{other}`")),
        };
        line += &format!(", and {subject} {words} the {}", target.class);
    }
    Ok(line + ".")
}

fn article(noun: &str) -> &'static str {
    match noun.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(q: &Question) -> String {
        format!("{}<image>{}", q.before, q.after)
    }

    #[test]
    fn geneval_records_become_their_checks() {
        let counting = r#"{"tag": "counting", "include": [{"class": "giraffe", "count": 3}], "exclude": [{"class": "giraffe", "count": 4}], "prompt": "a photo of three giraffes"}"#;
        let q = geneval_question("a photo of three giraffes", counting).unwrap();
        assert_eq!(q.tag, "counting");
        assert!(
            q.before
                .starts_with("You are given a text prompt: \"three giraffes\" \n")
        );
        assert!(text(&q).contains("\n- There are exactly 3 instances of giraffe.\n"));
        assert!(!text(&q).contains("fewer"), "{}", text(&q));
        assert!(
            q.after
                .ends_with("Only one number should appear inside the box.")
        );

        let position = r#"{"tag": "position", "include": [{"class": "bench", "count": 1}, {"class": "orange", "count": 1, "color": "blue", "position": ["left of", 0]}], "prompt": "a photo of a orange left of a bench"}"#;
        let t = text(&geneval_question("a photo of a orange left of a bench", position).unwrap());
        assert!(t.contains("- There is a bench.\n- There is an orange, and it is blue, and it is to the left of the bench."), "{t}");

        let absent = r#"{"tag": "x", "include": [{"class": "cat", "count": 2, "color": "red"}], "exclude": [{"class": "dog", "count": 1}, {"class": "cat", "count": 5}], "prompt": "p"}"#;
        let t = text(&geneval_question("p", absent).unwrap());
        assert!(t.contains("- There are at least 2 instances of cat, and all of them are red.\n- There is no dog.\n- There are fewer than 5 instances of cat.\n"), "{t}");
    }

    #[test]
    fn bad_records_are_refused_with_the_reason() {
        let e = |r: &str| geneval_question("p", r).unwrap_err();
        assert!(e("{}").contains("not a GenEval record"));
        assert!(e(r#"{"tag": "t", "include": []}"#).contains("includes nothing"));
        assert!(
            e(r#"{"tag": "t", "include": [{"class": "a", "count": 1, "position": ["near", 0]}]}"#)
                .contains("unknown relation `near`")
        );
        assert!(
            e(r#"{"tag": "t", "include": [{"class": "a", "count": 1, "position": ["above", 3]}]}"#)
                .contains("include clause 3")
        );
    }

    #[test]
    fn match_questions_are_reasongen_r1s_template() {
        let q = match_question("A photo of a red cube", "color");
        assert_eq!(
            text(&q),
            crate::vlm::RM_TEMPLATE.replace("{prompt}", "a red cube")
        );
        assert_eq!(q.tag, "color");
    }
}
