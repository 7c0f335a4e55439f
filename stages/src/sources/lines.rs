//! Numbered lines of a text file (1-based; blank lines skipped, text trimmed), and JSON
//! lines parsed with errors that name the file and the line.

use pipeline::{ResultExt, StageError};
use serde::de::{DeserializeOwned, IgnoredAny};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The non-blank lines of a file, with their line numbers, read as they are asked for.
pub(crate) struct Lines {
    path: PathBuf,
    reader: BufReader<File>,
    number: u64,
}

impl Lines {
    pub(crate) fn open(path: &Path) -> Result<Lines, StageError> {
        let file = File::open(path).context(path.display())?;
        Ok(Lines {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            number: 0,
        })
    }
}

impl Iterator for Lines {
    /// (line number, trimmed text)
    type Item = Result<(u64, String), StageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut text = String::new();
        loop {
            text.clear();
            self.number += 1;
            match self.reader.read_line(&mut text) {
                Ok(0) => return None,
                Ok(_) => {
                    let trimmed = text.trim();
                    if !trimmed.is_empty() {
                        return Some(Ok((self.number, trimmed.to_string())));
                    }
                }
                Err(e) => return Some(Err(line_error(&self.path, self.number, e))),
            }
        }
    }
}

/// An error about line `number` of `path`.
pub(crate) fn line_error(path: &Path, number: u64, why: impl std::fmt::Display) -> StageError {
    StageError::msg(format!("{}: line {number}: {why}", path.display()))
}

/// Line `number` of `path` parsed as JSON into `T`.
pub(crate) fn parse<T: DeserializeOwned>(
    path: &Path,
    number: u64,
    text: &str,
) -> Result<T, StageError> {
    serde_json::from_str(text).map_err(|e| line_error(path, number, format!("not valid JSON: {e}")))
}

/// Check that line `number` of `path` is one JSON object, without building it.
pub(crate) fn check_object(path: &Path, number: u64, text: &str) -> Result<(), StageError> {
    parse::<IgnoredAny>(path, number, text)?;
    if !text.starts_with('{') {
        return Err(line_error(path, number, "not a JSON object"));
    }
    Ok(())
}
