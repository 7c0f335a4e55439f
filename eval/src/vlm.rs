//! ReasonGen-R1's reward judge (paper.md §3.2) as requests and answers, whoever serves
//! the model: the exact `RM_TEMPLATE` ([`RM_TEMPLATE`], byte for byte, with its
//! trailing space), the prompt without a leading `"A photo of "` ([`judge_prompt`]),
//! the image upscaled so that W·H ≥ 512² with Pillow's bicubic filter and sent as a PNG
//! ([`judge_image`]), and the answer's last `\boxed{}` read as mathruler's
//! `extract_boxed_content` does ([`boxed`]): `'1'` scores 1, anything else 0
//! ([`reward`]).
//!
//! [`ShapesVlm`] is the shapes world's stand-in for the judge model: it answers those
//! same requests with the exact shapes judge, so the reward path over HTTP has a known
//! truth, and the captioner's and augmenter's requests of the rationale stages with the
//! exact teacher's text ([`crate::vlm_teacher`]); an endpoint `builtin:shapes-vlm`
//! starts it on loopback ([`start_builtin`]).

use crate::vlm_teacher;
use datasets::shapes::{Judge, JudgeOptions, Metadata, Task, all_prompts};
use image::{DynamicImage, RgbImage};
use llm::config::LlmConfig;
use llm::mock::{Answerer, MockServer, Script};
use std::collections::HashMap;
use std::sync::Arc;

/// `endpoint.base_url` that starts the shapes world's judge model on loopback.
pub const BUILTIN_SHAPES_VLM: &str = "builtin:shapes-vlm";

/// `config` as checks before a run see it: the builtin name as a loopback URL.
pub fn checkable(config: &LlmConfig) -> LlmConfig {
    let mut c = config.clone();
    if c.endpoint.base_url == BUILTIN_SHAPES_VLM {
        c.endpoint.base_url = "http://127.0.0.1/v1".into();
    }
    c
}

/// The shapes VLM on loopback when the endpoint asks for it; its URL then replaces the
/// builtin name in `config`. Keep the server while requests go.
pub fn start_builtin(config: &mut LlmConfig) -> Result<Option<MockServer>, String> {
    if config.endpoint.base_url != BUILTIN_SHAPES_VLM {
        return Ok(None);
    }
    let vlm = Arc::new(ShapesVlm::default());
    let server = MockServer::start(Script {
        answerer: Some(Answerer(Arc::new(move |r| vlm.answer_request(r)))),
        ..Script::default()
    })
    .map_err(|e| format!("starting the shapes VLM: {e}"))?;
    config.endpoint.base_url = server.url();
    Ok(Some(server))
}

/// The judge's prompt; `{prompt}` stands for the prompt, `<image>` for the image.
pub const RM_TEMPLATE: &str = "You are given a text prompt: \"{prompt}\" \nBelow is one generated image:\n<image>\n\n1. Describe the image thoroughly (objects, colors, layout, etc.), do not be affected by the prompt.\n2. Identify key visual elements and instructions from the prompt.\n3. Evaluate how well the image follows the prompt:\n   - Are all required elements present?\n   - Are object counts, colors, and positions accurate?\n\nBe extremly strict and precise:\nOnly if the image matches the prompt perfectly, respond with: \\boxed{1}\nOtherwise, respond with: \\boxed{0}\n\nReason before your final boxed answer. Only one number should appear inside the box.";

/// Images smaller than this many pixels are upscaled to it.
pub const MIN_PIXELS: u64 = 512 * 512;

/// The prompt as the judge sees it: without a leading "A photo of " (any case).
pub fn judge_prompt(prompt: &str) -> &str {
    const PREFIX: &str = "a photo of ";
    match prompt.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => &prompt[PREFIX.len()..],
        _ => prompt,
    }
}

/// The text before and after the image: `RM_TEMPLATE` with the prompt filled in, cut
/// at `<image>`.
pub fn judge_text(prompt: &str) -> (String, String) {
    let filled = RM_TEMPLATE.replace("{prompt}", judge_prompt(prompt));
    let (before, after) = filled
        .split_once("<image>")
        .expect("the template holds <image>");
    (before.to_string(), after.to_string())
}

/// The image as the judge receives it: upscaled so that W·H ≥ 512² (each side times
/// √(512² / (W·H)), rounded down, as verl's `process_image`), with Pillow's bicubic
/// filter; as it is when already that large.
pub fn judge_image(image: &RgbImage) -> Result<RgbImage, String> {
    let (w, h) = image.dimensions();
    let pixels = w as u64 * h as u64;
    if pixels == 0 || pixels >= MIN_PIXELS {
        return Ok(image.clone());
    }
    let factor = (MIN_PIXELS as f64 / pixels as f64).sqrt();
    let (nw, nh) = ((w as f64 * factor) as u32, (h as f64 * factor) as u32);
    let bytes = datasets::images::resize(&DynamicImage::ImageRgb8(image.clone()), nw, nh)?;
    RgbImage::from_raw(nw, nh, bytes).ok_or_else(|| "resized image of the wrong size".into())
}

/// The content of the last `\boxed{…}` of `text`, braces matched, trimmed; `None` when
/// there is none or it is not closed (mathruler returns `"None"` then).
pub fn boxed(text: &str) -> Option<&str> {
    const OPEN: &str = "\\boxed{";
    let start = text.rfind(OPEN)? + OPEN.len();
    let mut depth = 0i32;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth < 0 {
                    return Some(text[start..start + i].trim());
                }
            }
            _ => {}
        }
    }
    None
}

/// The reward of a judge's answer: 1 when its last box holds exactly `1`, else 0.
pub fn reward(answer: &str) -> f64 {
    f64::from(u8::from(boxed(answer) == Some("1")))
}

/// The shapes world's VLM: the exact shapes judge behind the judge's requests, the
/// exact teacher behind caption and augment requests.
pub struct ShapesVlm {
    /// Every shapes-GenEval prompt, as the judge sees it ([`judge_prompt`]).
    records: HashMap<String, Metadata>,
    judge: Judge,
}

impl Default for ShapesVlm {
    fn default() -> Self {
        let records = Task::GENEVAL
            .into_iter()
            .flat_map(all_prompts)
            .map(|m| (judge_prompt(&m.prompt).to_string(), m))
            .collect();
        ShapesVlm {
            records,
            judge: Judge::new(JudgeOptions::default()),
        }
    }
}

impl ShapesVlm {
    /// The answer to a judge request whose text holds `prompt` (between the template's
    /// quotes) and whose image is `image`: what the exact judge saw, ending in
    /// `\boxed{1}` or `\boxed{0}`. `Err` for a request that is not the judge's, or a
    /// prompt outside the shapes world.
    pub fn answer(&self, text: &str, image: &RgbImage) -> Result<String, String> {
        let prompt = quoted_prompt(text)
            .ok_or("the request is not ReasonGen-R1's judge prompt (no `text prompt: \"…\"`)")?;
        let record = self
            .records
            .get(prompt)
            .ok_or_else(|| format!("`{prompt}` is not a shapes-world prompt"))?;
        let found: Vec<String> = self
            .judge
            .detect(image)
            .iter()
            .map(|d| format!("a {} {}", d.color.name(), d.class.name()))
            .collect();
        let verdict = self.judge.score(image, record);
        Ok(format!(
            "The image shows {}. {} \\boxed{{{}}}",
            if found.is_empty() {
                "no shapes".to_string()
            } else {
                found.join(", ")
            },
            if verdict.correct {
                "It matches the prompt.".to_string()
            } else {
                format!("It does not match the prompt: {}.", verdict.reason)
            },
            u8::from(verdict.correct)
        ))
    }
}

impl ShapesVlm {
    /// The answer to a chat-completion request body (OpenAI's format: the user turn's
    /// text parts and its image as a `data:` URL): the judge's verdict for the judge's
    /// prompt, else the image's rationale for a request that shows one, else the
    /// augmented prompts of the caption the text shows.
    pub fn answer_request(&self, request: &serde_json::Value) -> Result<String, String> {
        let mut text = String::new();
        let mut image = None;
        for m in request["messages"].as_array().into_iter().flatten() {
            if m["role"] != "user" {
                continue;
            }
            match &m["content"] {
                serde_json::Value::String(s) => text.push_str(s),
                serde_json::Value::Array(parts) => {
                    for p in parts {
                        if let Some(t) = p["text"].as_str() {
                            text.push_str(t);
                        }
                        if let Some(url) = p["image_url"]["url"].as_str() {
                            image = Some(decode_data_url(url)?);
                        }
                    }
                }
                _ => {}
            }
        }
        match image {
            Some(image) if quoted_prompt(&text).is_some() => self.answer(&text, &image),
            Some(image) => Ok(vlm_teacher::caption(&self.judge, &image)),
            None => vlm_teacher::augment(&text),
        }
    }
}

/// The image of a `data:…;base64,` URL.
fn decode_data_url(url: &str) -> Result<RgbImage, String> {
    use base64::Engine;
    let (_, b64) = url
        .split_once(";base64,")
        .ok_or("the image URL is not a base64 data: URL")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the image's base64: {e}"))?;
    Ok(image::load_from_memory(&bytes)
        .map_err(|e| format!("the image: {e}"))?
        .to_rgb8())
}

/// The prompt between `text prompt: "` and `" ` on the template's first line.
fn quoted_prompt(text: &str) -> Option<&str> {
    let rest = text.split_once("You are given a text prompt: \"")?.1;
    Some(rest.split_once("\" \n")?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_byte_exact() {
        let committed = include_str!("../tests/fixtures/rm_template.txt");
        assert_eq!(RM_TEMPLATE, committed);
        assert!(RM_TEMPLATE.starts_with("You are given a text prompt: \"{prompt}\" \n"));
        let (before, after) = judge_text("A photo of a red cube");
        assert!(before.ends_with("image:\n") && after.starts_with("\n\n1. Describe"));
        assert!(before.contains("\"a red cube\" \n"));
    }

    #[test]
    fn prompts_lose_a_leading_a_photo_of() {
        assert_eq!(judge_prompt("A photo of a red cube"), "a red cube");
        assert_eq!(judge_prompt("a photo of two cones"), "two cones");
        assert_eq!(judge_prompt("two cones"), "two cones");
        assert_eq!(judge_prompt("a photo"), "a photo");
    }

    #[test]
    fn boxes_are_read_as_mathruler_reads_them() {
        assert_eq!(
            boxed("\\boxed{0} then \\boxed{1}"),
            Some("1"),
            "the last box"
        );
        assert_eq!(boxed("\\boxed{ 1 }"), Some("1"), "trimmed");
        assert_eq!(
            boxed("\\boxed{\\frac{1}{2}}"),
            Some("\\frac{1}{2}"),
            "nested"
        );
        assert_eq!(boxed("no box"), None);
        assert_eq!(boxed("\\boxed{1"), None, "not closed");
        assert_eq!(reward("so \\boxed{1}"), 1.0);
        assert_eq!(reward("\\boxed{ 1 }"), 1.0);
        assert_eq!(reward("\\boxed{1.0}"), 0.0);
        assert_eq!(reward("\\boxed{0}"), 0.0);
        assert_eq!(reward("\\boxed{1} no, \\boxed{0}"), 0.0);
        assert_eq!(reward("I think 1"), 0.0);
    }

    #[test]
    fn small_images_are_upscaled_to_512_squared() {
        let small = RgbImage::from_pixel(64, 64, image::Rgb([200, 10, 10]));
        let big = judge_image(&small).unwrap();
        assert_eq!(big.dimensions(), (512, 512));
        assert_eq!(big.get_pixel(100, 100), &image::Rgb([200, 10, 10]));
        // Not square: 100 × 50 → ×√(512²/5000) = ×7.24, rounded down.
        let wide = RgbImage::new(100, 50);
        assert_eq!(judge_image(&wide).unwrap().dimensions(), (724, 362));
        let large = RgbImage::new(600, 500);
        assert_eq!(judge_image(&large).unwrap().dimensions(), (600, 500));
    }
}
