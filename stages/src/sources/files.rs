//! The files a source reads: a file, or the files of a folder in name order, and their
//! content digests for the run key.

use pipeline::store::FileHasher;
use pipeline::{Digest, ResultExt, StageError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A table file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Parquet,
}

impl Format {
    /// The format an extension names (`.jsonl`/`.ndjson`, `.parquet`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The format of `path` given the configured one: a folder's files must have the
    /// configured format's extension (`single` false); a file named on its own takes
    /// the configured format whatever its extension.
    fn pick(path: &Path, configured: Option<Format>, single: bool) -> Option<Format> {
        match (configured, Format::from_path(path)) {
            (Some(want), Some(have)) => (want == have).then_some(want),
            (Some(want), None) => single.then_some(want),
            (None, have) => have,
        }
    }
}

/// The files to read: `root` itself if it is a file, else its files (not recursively)
/// in name order. `pick(path, single)` gives a file's format, or `None` to skip it (a
/// file named on its own must have one); `expected` says which files are read, for
/// the errors.
pub(crate) fn list<T>(
    root: &Path,
    expected: &str,
    pick: impl Fn(&Path, bool) -> Option<T>,
) -> Result<Vec<(PathBuf, T)>, StageError> {
    let meta = std::fs::metadata(root).context(root.display())?;
    if !meta.is_dir() {
        return match pick(root, true) {
            Some(t) => Ok(vec![(root.to_path_buf(), t)]),
            None => Err(StageError::msg(format!(
                "{}: cannot tell the format from the extension; expected {expected}",
                root.display()
            ))),
        };
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).context(root.display())? {
        let path = entry.context(root.display())?.path();
        if path.is_file()
            && let Some(t) = pick(&path, false)
        {
            out.push((path, t));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    if out.is_empty() {
        return Err(StageError::msg(format!(
            "{}: no {expected} files in the folder",
            root.display()
        )));
    }
    Ok(out)
}

/// The Parquet and JSONL files at `written` (a file, or a folder's files in name order;
/// relative to `recipe_dir`), each with its format (`configured`, else by extension).
pub(crate) fn tables(
    written: &str,
    configured: Option<Format>,
    recipe_dir: &Path,
) -> Result<Vec<(PathBuf, Format)>, StageError> {
    let root = pipeline::context::resolve_against(recipe_dir, written);
    list(&root, "jsonl or parquet", |p, single| {
        Format::pick(p, configured, single)
    })
}

/// The `externals` of a stage that reads [`tables`].
pub(crate) fn table_digests(
    written: &str,
    configured: Option<Format>,
    files: &FileHasher,
    recipe_dir: &Path,
) -> Result<Vec<(String, Digest)>, StageError> {
    let root = pipeline::context::resolve_against(recipe_dir, written);
    let sources = tables(written, configured, recipe_dir)?;
    digests(
        written,
        &root,
        sources.iter().map(|(p, _)| p.as_path()),
        files,
    )
}

/// Content digests of `paths` (under `root`), labelled with the path as the recipe
/// writes it (`written`), so that moving the project folder does not change the key.
pub(crate) fn digests<'a>(
    written: &str,
    root: &Path,
    paths: impl IntoIterator<Item = &'a Path>,
    files: &FileHasher,
) -> Result<Vec<(String, Digest)>, StageError> {
    paths
        .into_iter()
        .map(|p| {
            let d = files.digest(p).context(p.display())?;
            let label = match p.strip_prefix(root) {
                Ok(rel) if !rel.as_os_str().is_empty() => {
                    format!("file {}/{}", written.trim_end_matches('/'), rel.display())
                }
                _ => format!("file {written}"),
            };
            Ok((label, d))
        })
        .collect()
}
