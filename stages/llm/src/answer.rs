//! Is a chat completion an answer? Checked inside the retry loop, before anything is
//! stored: `finish_reason=length` (cut short), a refusal or content filter, empty or
//! null content, and, for JSON tasks, text that is not JSON or JSON that does not match
//! the schema, are invalid answers (sent again up to `limits.max_invalid`). An answer is
//! what the memo keeps, with the tokens and cost it took.

use super::client::Reply;
use super::errors::ErrorClass;
use super::schema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a valid answer looks like.
#[derive(Clone, Debug)]
pub enum Expect {
    Text,
    /// JSON matching this schema.
    Json(Value),
}

/// Tokens and money an attempt or a row took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

impl std::ops::AddAssign for Spend {
    fn add_assign(&mut self, o: Spend) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cost_usd += o.cost_usd;
    }
}

/// A validated answer, as the memo keeps it under the request key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The text (text tasks) or the parsed JSON (JSON tasks).
    pub content: Value,
    /// What the answering attempt took.
    pub spend: Spend,
}

/// The content of `reply` if it is a valid answer, else the class and a message.
pub fn check(reply: &Reply, expect: &Expect) -> Result<Value, (ErrorClass, String)> {
    match reply.finish_reason.as_deref() {
        Some("length") => {
            return Err((
                ErrorClass::Truncated,
                "the answer was cut at max_tokens (finish_reason=length)".into(),
            ));
        }
        Some("content_filter") => {
            return Err((
                ErrorClass::Refusal,
                "the answer was withheld by the content filter (finish_reason=content_filter)"
                    .into(),
            ));
        }
        _ => {}
    }
    if let Some(refusal) = reply.refusal.as_deref().filter(|r| !r.is_empty()) {
        return Err((ErrorClass::Refusal, format!("the model refused: {refusal}")));
    }
    let text = reply.content.as_deref().map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err((
            ErrorClass::Empty,
            format!(
                "empty answer (content {})",
                if reply.content.is_none() {
                    "null"
                } else {
                    "blank"
                }
            ),
        ));
    }
    match expect {
        Expect::Text => Ok(Value::String(text.to_string())),
        Expect::Json(schema) => {
            let value: Value = serde_json::from_str(strip_fence(text)).map_err(|e| {
                (
                    ErrorClass::InvalidJson,
                    format!("the answer is not JSON: {e}"),
                )
            })?;
            schema::validate(schema, &value).map_err(|e| {
                (
                    ErrorClass::SchemaMismatch,
                    format!("the answer does not match the schema: {e}"),
                )
            })?;
            Ok(value)
        }
    }
}

/// The inside of one Markdown code fence around the whole text (models answering
/// without `response_format` often add one), else the text.
fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let Some(body) = rest.strip_suffix("```") else {
        return text;
    };
    // Drop the info string (`json`) on the opening line.
    body.split_once('\n').map_or(body, |(_, b)| b).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::RateHeaders;
    use serde_json::json;

    fn reply(content: Option<&str>, finish: &str) -> Reply {
        Reply {
            content: content.map(str::to_string),
            refusal: None,
            finish_reason: Some(finish.to_string()),
            usage: None,
            headers: RateHeaders::default(),
        }
    }

    fn json_expect() -> Expect {
        Expect::Json(json!({
            "type": "object", "required": ["a"], "additionalProperties": false,
            "properties": {"a": {"type": "string"}}
        }))
    }

    #[test]
    fn valid_answers() {
        assert_eq!(
            check(&reply(Some("  A red cube.\n"), "stop"), &Expect::Text).unwrap(),
            json!("A red cube.")
        );
        assert_eq!(
            check(&reply(Some(r#"{"a": "x"}"#), "stop"), &json_expect()).unwrap(),
            json!({"a": "x"})
        );
        let fenced = "```json\n{\"a\": \"y\"}\n```";
        assert_eq!(
            check(&reply(Some(fenced), "stop"), &json_expect()).unwrap(),
            json!({"a": "y"})
        );
    }

    #[test]
    fn invalid_answers_are_classified() {
        let cases = [
            (reply(Some("A red"), "length"), ErrorClass::Truncated),
            (reply(Some("x"), "content_filter"), ErrorClass::Refusal),
            (reply(None, "stop"), ErrorClass::Empty),
            (reply(Some("  "), "stop"), ErrorClass::Empty),
            (reply(Some("not json {"), "stop"), ErrorClass::InvalidJson),
            (
                reply(Some(r#"{"b": 1}"#), "stop"),
                ErrorClass::SchemaMismatch,
            ),
        ];
        for (r, want) in cases {
            assert_eq!(check(&r, &json_expect()).unwrap_err().0, want, "{r:?}");
        }
        let mut refused = reply(None, "stop");
        refused.refusal = Some("I can't help with that.".into());
        assert_eq!(
            check(&refused, &Expect::Text).unwrap_err().0,
            ErrorClass::Refusal
        );
    }
}
