//! What a request can cost, known before it is sent: its tokens, counted two ways.
//!
//! - *Worst case*, for the budget's reservations: the input's text counted with the
//!   model's tokenizer when the config names one (`cost.tokenizer`), otherwise bounded
//!   by its UTF-8 bytes (no token of a byte-level BPE, or of a SentencePiece model with
//!   byte fallback, is shorter than one byte); plus the chat template's own tokens, at
//!   most [`MESSAGE_OVERHEAD`] per message and [`REQUEST_OVERHEAD`] per request; plus
//!   each image at `cost.image_tokens`, or by default ⌈W·H / 28²⌉ + 2 (Qwen2-VL and
//!   Qwen2.5-VL: one token per 28×28 pixels) but at least [`IMAGE_TOKENS_FLOOR`]
//!   (OpenAI's most for one high-detail image); plus `max_tokens` of output.
//! - *Expected*, for rate limits and `reasongen plan`: the tokenizer's count, or the
//!   bytes / 4 (English text with GPT-style BPE); 4 template tokens per message and 3
//!   per request (OpenAI's accounting); each image at `cost.image_tokens`, or
//!   ⌈W·H / 28²⌉ + 2.

use super::config::CostConfig;
use std::path::Path;

/// Chat-template tokens one message can add (role markers, separators).
pub const MESSAGE_OVERHEAD: u64 = 8;
/// Chat-template tokens one request can add (a default system prompt, the reply's
/// opening).
pub const REQUEST_OVERHEAD: u64 = 64;
/// The fewest tokens reserved for an image by default.
pub const IMAGE_TOKENS_FLOOR: u64 = 1445;
/// Bytes per token in the expected count without a tokenizer.
const BYTES_PER_TOKEN: u64 = 4;
/// Chat-template tokens a message usually adds.
const EXPECTED_MESSAGE_OVERHEAD: u64 = 4;
/// Chat-template tokens a request usually adds.
const EXPECTED_REQUEST_OVERHEAD: u64 = 3;

/// Tokens of a request's input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputTokens {
    pub expected: u64,
    pub worst: u64,
}

/// Counts the input tokens of requests.
pub struct TokenCounter {
    tokenizer: Option<tokenizers::Tokenizer>,
    image_tokens: Option<u64>,
}

impl TokenCounter {
    /// A counter for `config`; `cost.tokenizer` resolves against `recipe_dir`.
    pub fn new(config: &CostConfig, recipe_dir: &Path) -> Result<TokenCounter, String> {
        let tokenizer =
            match &config.tokenizer {
                None => None,
                Some(p) => {
                    let path = recipe_dir.join(p);
                    Some(tokenizers::Tokenizer::from_file(&path).map_err(|e| {
                        format!("cost.tokenizer: cannot read {}: {e}", path.display())
                    })?)
                }
            };
        Ok(TokenCounter {
            tokenizer,
            image_tokens: config.image_tokens,
        })
    }

    /// A counter from bytes alone (for checks before a run).
    pub fn from_bytes(config: &CostConfig) -> TokenCounter {
        TokenCounter {
            tokenizer: None,
            image_tokens: config.image_tokens,
        }
    }

    /// The tokens of a request whose messages hold `texts` and `images` (encoded files).
    pub fn input(&self, texts: &[&str], images: &[&[u8]]) -> InputTokens {
        let messages = texts.len() as u64;
        let mut count = InputTokens {
            expected: EXPECTED_REQUEST_OVERHEAD + EXPECTED_MESSAGE_OVERHEAD * messages,
            worst: REQUEST_OVERHEAD + MESSAGE_OVERHEAD * messages,
        };
        for text in texts {
            let (expected, worst) = match &self.tokenizer {
                Some(t) => {
                    let n = t
                        .encode(*text, false)
                        .map(|e| e.get_ids().len() as u64)
                        // A text the tokenizer rejects is bounded by its bytes.
                        .unwrap_or(text.len() as u64);
                    (n, n)
                }
                None => (
                    (text.len() as u64).div_ceil(BYTES_PER_TOKEN),
                    text.len() as u64,
                ),
            };
            count.expected += expected;
            count.worst += worst;
        }
        for image in images {
            let (expected, worst) = self.image(image);
            count.expected += expected;
            count.worst += worst;
        }
        count
    }

    /// Tokens of one image: expected, and reserved.
    pub fn image(&self, bytes: &[u8]) -> (u64, u64) {
        if let Some(n) = self.image_tokens {
            return (n, n);
        }
        let pixels = imagesize::blob_size(bytes)
            .map(|s| s.width as u64 * s.height as u64)
            .unwrap_or(0);
        let n = pixels.div_ceil(28 * 28) + 2;
        (n, n.max(IMAGE_TOKENS_FLOOR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_bound_the_worst_case_and_quarter_it_for_the_expected() {
        let c = TokenCounter::from_bytes(&CostConfig::default());
        let t = c.input(&["abcdefgh", "é"], &[]);
        assert_eq!(t.worst, REQUEST_OVERHEAD + 2 * MESSAGE_OVERHEAD + 8 + 2);
        assert_eq!(t.expected, 3 + 2 * 4 + 2 + 1);
    }

    #[test]
    fn the_models_tokenizer_counts_exactly() {
        use tokenizers::models::wordlevel::WordLevel;
        use tokenizers::pre_tokenizers::whitespace::Whitespace;
        let vocab = [("[UNK]", 0), ("draw", 1), ("a", 2), ("cat", 3)]
            .into_iter()
            .map(|(w, i)| (w.to_string(), i))
            .collect();
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token("[UNK]".into())
            .build()
            .unwrap();
        let mut tokenizer = tokenizers::Tokenizer::new(model);
        tokenizer.with_pre_tokenizer(Some(Whitespace {}));
        let dir = tempfile::tempdir().unwrap();
        tokenizer
            .save(dir.path().join("tokenizer.json"), false)
            .unwrap();
        let config = CostConfig {
            tokenizer: Some("tokenizer.json".into()),
            ..CostConfig::default()
        };
        let c = TokenCounter::new(&config, dir.path()).unwrap();
        // Four words, one of them unknown: four tokens, expected and at worst.
        let t = c.input(&["draw a small cat"], &[]);
        assert_eq!(t.expected, 3 + 4 + 4);
        assert_eq!(t.worst, REQUEST_OVERHEAD + MESSAGE_OVERHEAD + 4);
        let missing = CostConfig {
            tokenizer: Some("nope.json".into()),
            ..CostConfig::default()
        };
        let err = TokenCounter::new(&missing, dir.path()).err().unwrap();
        assert!(
            err.starts_with("cost.tokenizer: cannot read ") && err.contains("nope.json"),
            "{err}"
        );
    }

    #[test]
    fn images_count_by_pixels_with_a_floor_or_as_configured() {
        let png = |w: u32, h: u32| {
            let mut out = std::io::Cursor::new(Vec::new());
            image::RgbImage::new(w, h)
                .write_to(&mut out, image::ImageFormat::Png)
                .unwrap();
            out.into_inner()
        };
        let c = TokenCounter::from_bytes(&CostConfig::default());
        assert_eq!(c.image(&png(64, 64)), (6 + 2, IMAGE_TOKENS_FLOOR));
        assert_eq!(c.image(&png(1400, 1400)), (2500 + 2, 2500 + 2));
        let fixed = TokenCounter::from_bytes(&CostConfig {
            image_tokens: Some(300),
            ..CostConfig::default()
        });
        assert_eq!(fixed.image(&png(1400, 1400)), (300, 300));
    }
}
