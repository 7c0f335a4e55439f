//! The prompt suites of the benchmarks ReasonGen-R1 reports, embedded from
//! `datasets/benchmarks/` (byte-exact copies; each suite's SOURCES.md beside its files):
//!
//! - GenEval's 553 records (`evaluation_metadata.jsonl`: tag, include, exclude,
//!   prompt), and Bagel's rewritten long prompts over the same records — a separate,
//!   labelled set, not comparable with the original;
//! - DPG-Bench's 1,065 prompts, by item id; its question file (`dpg_bench.csv`) is not
//!   embedded: a user's copy is read by path and checked by its git blob id;
//! - T2I-CompBench's validation sets, with the colour file as it was before the
//!   2025-09-03 deduplication (which ReasonGen-R1's lists match) beside the current one.
//!
//! Lines of the T2I-CompBench files end in CRLF or LF, often without a final newline:
//! they are split by line and a trailing `\r` dropped, never concatenated.

use sha1::{Digest, Sha1};
use std::path::Path;

const GENEVAL: &str = include_str!("../benchmarks/geneval/evaluation_metadata.jsonl");
const GENEVAL_LONG: &str =
    include_str!("../benchmarks/geneval/rewritten/bagel/evaluation_metadata_long.jsonl");
const DPG: &str = include_str!("../benchmarks/dpg_bench/prompts.jsonl");

/// Git blob id of `dpg_bench.csv` at ELLA's release (dpg_bench/SOURCES.md).
pub const DPG_CSV_BLOB: &str = "98457fc9901943f51ff9a30367250fc292533bed";

/// A benchmark's prompt set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// GenEval's original 553 prompts.
    GenEval,
    /// GenEval's records with Bagel's rewritten long prompts.
    GenEvalLong,
    DpgBench,
    T2iCompBench(T2iFile),
}

/// A T2I-CompBench validation file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum T2iFile {
    /// `color_val.txt` as it was before 2025-09-03 (ReasonGen-R1's lists match it).
    ColorBefore2025_09,
    /// `color_val.txt` now (deduplicated).
    Color,
    Shape,
    Texture,
    Spatial,
    NonSpatial,
    Complex,
    /// T2I-CompBench++ only.
    Spatial3d,
    /// T2I-CompBench++ only.
    Numeracy,
}

impl T2iFile {
    pub const ALL: [T2iFile; 9] = [
        T2iFile::ColorBefore2025_09,
        T2iFile::Color,
        T2iFile::Shape,
        T2iFile::Texture,
        T2iFile::Spatial,
        T2iFile::NonSpatial,
        T2iFile::Complex,
        T2iFile::Spatial3d,
        T2iFile::Numeracy,
    ];

    /// The category as T2I-CompBench names its folders and tables (`color`, …).
    pub fn category(self) -> &'static str {
        match self {
            T2iFile::ColorBefore2025_09 | T2iFile::Color => "color",
            T2iFile::Shape => "shape",
            T2iFile::Texture => "texture",
            T2iFile::Spatial => "spatial",
            T2iFile::NonSpatial => "non_spatial",
            T2iFile::Complex => "complex",
            T2iFile::Spatial3d => "3d_spatial",
            T2iFile::Numeracy => "numeracy",
        }
    }

    /// The file, as its SOURCES.md names it.
    pub fn file(self) -> &'static str {
        match self {
            T2iFile::ColorBefore2025_09 => "dataset_before_2025-09-03/color_val.txt",
            T2iFile::Color => "dataset/color_val.txt",
            T2iFile::Shape => "dataset/shape_val.txt",
            T2iFile::Texture => "dataset/texture_val.txt",
            T2iFile::Spatial => "dataset/spatial_val.txt",
            T2iFile::NonSpatial => "dataset/non_spatial_val.txt",
            T2iFile::Complex => "dataset/complex_val.txt",
            T2iFile::Spatial3d => "dataset/3d_spatial_val.txt",
            T2iFile::Numeracy => "dataset/numeracy_val.txt",
        }
    }

    fn text(self) -> &'static str {
        match self {
            T2iFile::ColorBefore2025_09 => {
                include_str!("../benchmarks/t2i_compbench/dataset_before_2025-09-03/color_val.txt")
            }
            T2iFile::Color => include_str!("../benchmarks/t2i_compbench/dataset/color_val.txt"),
            T2iFile::Shape => include_str!("../benchmarks/t2i_compbench/dataset/shape_val.txt"),
            T2iFile::Texture => {
                include_str!("../benchmarks/t2i_compbench/dataset/texture_val.txt")
            }
            T2iFile::Spatial => {
                include_str!("../benchmarks/t2i_compbench/dataset/spatial_val.txt")
            }
            T2iFile::NonSpatial => {
                include_str!("../benchmarks/t2i_compbench/dataset/non_spatial_val.txt")
            }
            T2iFile::Complex => {
                include_str!("../benchmarks/t2i_compbench/dataset/complex_val.txt")
            }
            T2iFile::Spatial3d => {
                include_str!("../benchmarks/t2i_compbench/dataset/3d_spatial_val.txt")
            }
            T2iFile::Numeracy => {
                include_str!("../benchmarks/t2i_compbench/dataset/numeracy_val.txt")
            }
        }
    }
}

/// One prompt of a suite.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkPrompt {
    /// `geneval-00012`, the DPG item id, `color-007`.
    pub id: String,
    pub text: String,
    /// The GenEval task, the T2I-CompBench category, or DPG's item source.
    pub tag: String,
    /// GenEval: the record, exactly as its line in `evaluation_metadata.jsonl`.
    pub record: Option<String>,
}

/// Why a suite could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    #[error("{file}, line {line}: {message}")]
    Line {
        file: &'static str,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// The prompts of `suite`, in the file's order.
pub fn prompts(suite: Suite) -> Result<Vec<BenchmarkPrompt>, BenchmarkError> {
    match suite {
        Suite::GenEval => geneval(GENEVAL, "geneval/evaluation_metadata.jsonl", "geneval"),
        Suite::GenEvalLong => geneval(
            GENEVAL_LONG,
            "geneval/rewritten/bagel/evaluation_metadata_long.jsonl",
            "geneval_long",
        ),
        Suite::DpgBench => dpg(),
        Suite::T2iCompBench(f) => Ok(lines(f.text())
            .enumerate()
            .map(|(i, text)| BenchmarkPrompt {
                id: format!("{}-{i:03}", f.category()),
                text: text.to_string(),
                tag: f.category().to_string(),
                record: None,
            })
            .collect()),
    }
}

/// The non-empty lines of `text`, a trailing `\r` dropped.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
}

fn geneval(
    text: &'static str,
    file: &'static str,
    prefix: &str,
) -> Result<Vec<BenchmarkPrompt>, BenchmarkError> {
    lines(text)
        .enumerate()
        .map(|(i, line)| {
            let bad = |message: String| BenchmarkError::Line {
                file,
                line: i + 1,
                message,
            };
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let field = |k: &str| {
                v[k].as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("no `{k}`")))
            };
            Ok(BenchmarkPrompt {
                id: format!("{prefix}-{i:05}"),
                text: field("prompt")?,
                tag: field("tag")?,
                record: Some(line.to_string()),
            })
        })
        .collect()
}

fn dpg() -> Result<Vec<BenchmarkPrompt>, BenchmarkError> {
    let file = "dpg_bench/prompts.jsonl";
    lines(DPG)
        .enumerate()
        .map(|(i, line)| {
            let bad = |message: String| BenchmarkError::Line {
                file,
                line: i + 1,
                message,
            };
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let id = v["item_id"]
                .as_str()
                .ok_or_else(|| bad("no `item_id`".into()))?;
            let text = v["text"].as_str().ok_or_else(|| bad("no `text`".into()))?;
            Ok(BenchmarkPrompt {
                id: id.to_string(),
                text: text.to_string(),
                tag: dpg_source(id).to_string(),
                record: None,
            })
        })
        .collect()
}

/// The source a DPG item id names (`partiprompts`, `COCOval`, …; plain numbers:
/// `dpg`).
fn dpg_source(id: &str) -> &str {
    let head = id.trim_end_matches(|c: char| c.is_ascii_digit() || c == '_');
    if head.is_empty() { "dpg" } else { head }
}

/// The git blob id (`git hash-object`) of `bytes`.
pub fn git_blob_id(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

/// Check a user's copy of `dpg_bench.csv`: its git blob id must be ELLA's release's.
pub fn check_dpg_questions(path: &Path) -> Result<Vec<u8>, BenchmarkError> {
    let at = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| BenchmarkError::File {
        path: at.clone(),
        message: format!("cannot read DPG-Bench's question file: {e}"),
    })?;
    let id = git_blob_id(&bytes);
    if id != DPG_CSV_BLOB {
        return Err(BenchmarkError::File {
            path: at,
            message: format!(
                "its git blob id is {id}, not {DPG_CSV_BLOB} (ELLA's dpg_bench/dpg_bench.csv at commit 3c228f1): \
                 download that file (datasets/benchmarks/dpg_bench/SOURCES.md says how) and check it with `git hash-object`"
            ),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suites_hold_what_their_sources_say() {
        let g = prompts(Suite::GenEval).unwrap();
        assert_eq!(g.len(), 553);
        let count = |tag: &str| g.iter().filter(|p| p.tag == tag).count();
        assert_eq!(
            [
                count("single_object"),
                count("two_object"),
                count("counting"),
                count("colors"),
                count("position"),
                count("color_attr")
            ],
            [80, 99, 80, 94, 100, 100]
        );
        assert_eq!(g[0].id, "geneval-00000");
        let long = prompts(Suite::GenEvalLong).unwrap();
        assert_eq!(long.len(), 553);
        // The same records, line by line; only the prompt differs.
        for (a, b) in g.iter().zip(&long) {
            let (mut x, mut y): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(a.record.as_deref().unwrap()).unwrap(),
                serde_json::from_str(b.record.as_deref().unwrap()).unwrap(),
            );
            x["prompt"] = serde_json::Value::Null;
            y["prompt"] = serde_json::Value::Null;
            assert_eq!(x, y);
        }
        assert!(long[0].text.split_whitespace().count() > 30);
        let dpg = prompts(Suite::DpgBench).unwrap();
        assert_eq!(dpg.len(), 1065);
        assert!(!dpg.iter().any(|p| p.id == "159"), "159 is absent upstream");
        assert_eq!(dpg.iter().filter(|p| p.tag == "partiprompts").count(), 324);
        for f in T2iFile::ALL {
            let p = prompts(Suite::T2iCompBench(f)).unwrap();
            assert_eq!(p.len(), 300, "{f:?}");
            assert!(
                p.iter()
                    .all(|p| !p.text.ends_with('\r') && !p.text.contains('_'))
            );
        }
        let (old, new) = (
            prompts(Suite::T2iCompBench(T2iFile::ColorBefore2025_09)).unwrap(),
            prompts(Suite::T2iCompBench(T2iFile::Color)).unwrap(),
        );
        assert_ne!(old, new, "the two colour files differ");
    }

    #[test]
    fn dpg_prompts_are_byte_exact_by_their_blob_ids() {
        for (i, line) in lines(DPG).enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = v["text"].as_str().unwrap();
            assert_eq!(
                git_blob_id(text.as_bytes()),
                v["blob"].as_str().unwrap(),
                "line {}",
                i + 1
            );
        }
        // `git hash-object` of an empty file.
        assert_eq!(git_blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }

    #[test]
    fn a_wrong_dpg_question_file_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dpg_bench.csv");
        std::fs::write(&path, "item_id,text\n0,a cat\n").unwrap();
        let e = check_dpg_questions(&path).unwrap_err().to_string();
        assert!(
            e.contains("dpg_bench.csv")
                && e.contains(DPG_CSV_BLOB)
                && e.contains("git hash-object"),
            "{e}"
        );
        let missing = check_dpg_questions(&dir.path().join("nope.csv")).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }
}
