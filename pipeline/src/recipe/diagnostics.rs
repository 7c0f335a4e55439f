//! Recipe errors that say where: file, line and column, node, key.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    pub node: Option<String>,
    /// The key, as written in the recipe (e.g. `config.sample.fraction`, `inputs.input`).
    pub key: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            file: path.to_path_buf(),
            position: None,
            node: None,
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": ")?;
        match (&self.node, &self.key) {
            (Some(node), Some(key)) => write!(f, "node `{node}`, key `{key}`: ")?,
            (Some(node), None) => write!(f, "node `{node}`: ")?,
            (None, Some(key)) => write!(f, "key `{key}`: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a recipe; nothing runs while there is one.
#[derive(Clone, Debug)]
pub struct RecipeError {
    pub diagnostics: Vec<Diagnostic>,
}

impl RecipeError {
    pub fn single(d: Diagnostic) -> Self {
        RecipeError {
            diagnostics: vec![d],
        }
    }
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if n > 1 {
            write!(f, "\n{n} problems in the recipe; nothing was run")?;
        }
        Ok(())
    }
}

impl std::error::Error for RecipeError {}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

/// The closest candidate by edit distance, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_suggestions() {
        let src = "a = 1\n[b]\nc = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, src.find('c').unwrap()), (3, 1));
        assert_eq!(line_col(src, src.find('2').unwrap()), (3, 5));
        assert_eq!(
            did_you_mean("table.fliter", ["table.filter", "command"]),
            Some("table.filter")
        );
        assert_eq!(did_you_mean("zzzz", ["table.filter", "command"]), None);
    }
}
