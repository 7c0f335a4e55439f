//! The text tokenizer (`tokenizer.json`, through the `tokenizers` crate), its special
//! tokens, and Janus-Pro's prompt format.
//!
//! Special ids are looked up by their strings, never assumed: Janus-Pro-1B's and -7B's
//! tokenizers differ. BOS, EOS and pad use full-width bars and `▁`
//! (`<｜begin▁of▁sentence｜>`); the roles use ASCII (`<|User|>`).
//!
//! A prompt is DeepSeek's conversation template with an empty system prompt,
//! tokenised without special tokens and with BOS put in front by hand (as ReasonGen-R1
//! does): `[BOS] "<|User|>: {prompt, trimmed}\n\n<|Assistant|>:"`, then
//! `<begin_of_image>` when the image comes at once (Janus-Pro); otherwise the rationale
//! follows directly.

use super::error::{JanusError, Result};
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

pub const BOS: &str = "<｜begin▁of▁sentence｜>";
pub const EOS: &str = "<｜end▁of▁sentence｜>";
pub const PAD: &str = "<｜▁pad▁｜>";
pub const BEGIN_OF_IMAGE: &str = "<begin_of_image>";
pub const END_OF_IMAGE: &str = "<end_of_image>";
pub const USER: &str = "<|User|>";
pub const ASSISTANT: &str = "<|Assistant|>";

/// The ids of the special tokens generation uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub begin_of_image: u32,
    pub end_of_image: u32,
    pub user: u32,
    pub assistant: u32,
}

pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    pub special: SpecialTokens,
}

impl TextTokenizer {
    /// Load `tokenizer.json`; every special token must be in it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = Tokenizer::from_file(path).map_err(|e| JanusError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| JanusError::Tokenizer {
                    path: path.to_path_buf(),
                    message: format!("no token `{token}`"),
                })
        };
        let special = SpecialTokens {
            bos: id(BOS)?,
            eos: id(EOS)?,
            pad: id(PAD)?,
            begin_of_image: id(BEGIN_OF_IMAGE)?,
            end_of_image: id(END_OF_IMAGE)?,
            user: id(USER)?,
            assistant: id(ASSISTANT)?,
        };
        Ok(TextTokenizer {
            inner,
            path: path.to_path_buf(),
            special,
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> JanusError {
        JanusError::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Ids of `text`, without BOS or other added special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, false).map_err(|e| self.error(e))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| self.error(e))
    }

    /// The prompt's ids (see the module documentation); `image_now` ends them with
    /// `<begin_of_image>`.
    pub fn prompt_ids(&self, prompt: &str, image_now: bool) -> Result<Vec<u32>> {
        let text = format!("{USER}: {}\n\n{ASSISTANT}:", prompt.trim());
        let mut ids = vec![self.special.bos];
        ids.extend(self.encode(&text)?);
        if image_now {
            ids.push(self.special.begin_of_image);
        }
        Ok(ids)
    }
}
