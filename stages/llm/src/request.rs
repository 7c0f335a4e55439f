//! Rows into chat-completion requests, and each request's key.
//!
//! The body is what the server receives: model, messages (system and user, an image as
//! a `data:` URL for VLM tasks, where the user text says `<image>` or else after it), sampling parameters and, for JSON tasks in
//! `json_schema`/`json_object` mode, `response_format`. The request key is
//! `sha256(canonical JSON of {base_url, body, template, template_version, expect})`
//! (`pipeline::Digest::of_json`): everything that shapes the answer, and nothing else,
//! so the key never holds the API key or a header, and a rerun, a resumed run or an
//! edited table finds every answer it has already paid for.

use super::answer::Expect;
use super::config::{LlmConfig, Structured};
use super::cost::{InputTokens, TokenCounter};
use super::template::Template;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pipeline::Digest;
use serde_json::{Map, Value, json};

/// Output tokens assumed for rate limits when no answer length is set.
const OUTPUT_TOKENS: u64 = 512;

/// A request ready to send.
#[derive(Clone, Debug)]
pub struct Request {
    /// The JSON body.
    pub body: Vec<u8>,
    /// Its input tokens, expected (for the rate limits, corrected by the answer's
    /// usage) and at worst (for the budget).
    pub input: InputTokens,
    /// Output tokens expected for the rate limits (`max_tokens`, else 512).
    pub est_out: u64,
    /// The most output tokens it may be billed (`max_tokens`), if bounded.
    pub max_out: Option<u64>,
}

/// What all requests of a node share.
pub struct Shape {
    base_url: String,
    model: String,
    params: Map<String, Value>,
    response_format: Option<Value>,
    expect: Expect,
    template: Template,
    counter: TokenCounter,
    max_out: Option<u64>,
}

impl Shape {
    /// The shape of `config`'s requests: `template` filled per row; answers of JSON
    /// `schema` (sent as `config.structured` says, under `name`) or text (`None`);
    /// tokens counted by `counter`.
    pub fn new(
        config: &LlmConfig,
        template: Template,
        schema: Option<Value>,
        name: &str,
        counter: TokenCounter,
    ) -> Result<Shape, String> {
        let s = &config.sampling;
        let mut params = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                params.insert(k.to_string(), v);
            }
        };
        put("temperature", s.temperature.map(Value::from));
        put("top_p", s.top_p.map(Value::from));
        put("max_tokens", s.max_tokens.map(Value::from));
        put("seed", s.seed.map(Value::from));
        for (k, v) in &s.extra {
            if matches!(
                k.as_str(),
                "model" | "messages" | "response_format" | "stream"
            ) {
                return Err(format!("sampling.extra.{k}: the stage sets `{k}` itself"));
            }
            params.insert(k.clone(), v.clone());
        }
        let response_format = match (&schema, config.structured.unwrap_or(Structured::JsonSchema)) {
            (None, _) | (Some(_), Structured::Prompt) => None,
            (Some(_), Structured::JsonObject) => Some(json!({"type": "json_object"})),
            (Some(schema), Structured::JsonSchema) => Some(json!({
                "type": "json_schema",
                "json_schema": {"name": name, "strict": true, "schema": schema},
            })),
        };
        Ok(Shape {
            base_url: config.endpoint.base_url.trim_end_matches('/').to_string(),
            model: config.endpoint.model.clone(),
            params,
            response_format,
            expect: schema.map_or(Expect::Text, Expect::Json),
            template,
            counter,
            max_out: config.max_output_tokens(),
        })
    }

    pub fn expect(&self) -> &Expect {
        &self.expect
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The key and request of a row: `fill` gives each placeholder's value, `image` is
    /// the image it shows the model (an encoded file); `Err`: why it cannot be sent.
    pub fn build(
        &self,
        fill: impl Fn(&str) -> String,
        image: Option<&[u8]>,
    ) -> Result<(Digest, Request), String> {
        let images: Vec<&[u8]> = image.into_iter().collect();
        let image_url = image.map(data_url).transpose()?;
        let system = self.template.system(&fill);
        let user = self.template.user(&fill);
        let texts: Vec<&str> = [system.as_str(), user.as_str()]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect();
        let input = self.counter.input(&texts, &images);
        let mut messages = Vec::with_capacity(2);
        if !system.is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
        // The image goes where the user text says `<image>`, else after the text.
        let user = match image_url {
            None => Value::String(user),
            Some(url) => {
                let image = json!({"type": "image_url", "image_url": {"url": url}});
                let (before, after) = user.split_once("<image>").unwrap_or((&user, ""));
                let text = |t: &str| (!t.is_empty()).then(|| json!({"type": "text", "text": t}));
                Value::Array(
                    text(before)
                        .into_iter()
                        .chain([image])
                        .chain(text(after))
                        .collect(),
                )
            }
        };
        messages.push(json!({"role": "user", "content": user}));
        let mut body = self.params.clone();
        body.insert("model".into(), Value::String(self.model.clone()));
        body.insert("messages".into(), Value::Array(messages));
        if let Some(rf) = &self.response_format {
            body.insert("response_format".into(), rf.clone());
        }
        let body = Value::Object(body);
        let bytes = serde_json::to_vec(&body).expect("JSON values serialise");
        let schema = match &self.expect {
            Expect::Text => &Value::Null,
            Expect::Json(s) => s,
        };
        let key = Digest::of_json(&json!({
            "base_url": self.base_url,
            "body": body,
            "template": self.template.name,
            "template_version": self.template.version,
            "expect": schema,
        }));
        Ok((
            key,
            Request {
                body: bytes,
                input,
                est_out: self.max_out.unwrap_or(OUTPUT_TOKENS),
                max_out: self.max_out,
            },
        ))
    }
}

/// An image as a `data:` URL, its type sniffed from its first bytes.
fn data_url(bytes: &[u8]) -> Result<String, String> {
    let mime = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        "image/gif"
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else {
        return Err("the image is not PNG, JPEG, GIF or WebP (the formats chat APIs take)".into());
    };
    Ok(format!("data:{mime};base64,{}", STANDARD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_types_are_sniffed() {
        assert!(
            data_url(b"\x89PNG\r\n\x1a\nrest")
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
        assert!(
            data_url(&[0xFF, 0xD8, 0xFF, 0xE0])
                .unwrap()
                .starts_with("data:image/jpeg;")
        );
        assert!(
            data_url(b"RIFF\0\0\0\0WEBPVP8 ")
                .unwrap()
                .starts_with("data:image/webp;")
        );
        assert!(data_url(b"BM....").is_err());
    }
}
