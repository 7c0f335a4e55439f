//! Errors of the Janus-Pro model path: each names the file, key or token it is about.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum JanusError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error(
        "{checkpoint}: {} tensor(s) the model needs are missing: {}",
        keys.len(),
        keys.join(", ")
    )]
    MissingKeys {
        checkpoint: String,
        keys: Vec<String>,
    },
    #[error("{file}: tensor `{key}` has shape {found:?}; the model needs {expected:?}")]
    Shape {
        file: String,
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl JanusError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        JanusError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn config(path: &Path, message: impl Into<String>) -> Self {
        JanusError::Config {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub(crate) fn checkpoint(path: &Path, message: impl std::fmt::Display) -> Self {
        JanusError::Checkpoint {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = JanusError> = std::result::Result<T, E>;
