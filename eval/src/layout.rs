//! `eval.layout`: generated images in the folder layout a benchmark's official
//! evaluator reads (`research/benchmarks.md` §1.2, §2.2, §3.2), under `images/` of the
//! report, with `layout.json` beside it saying what was laid out and how it was drawn,
//! and `files.jsonl` naming the samples behind each file:
//!
//! - GenEval: `images/<index:05d>/metadata.jsonl` (the prompt's record, exactly its
//!   line of `evaluation_metadata.jsonl`), `samples/<i:04d>.png`, and the rationales in
//!   `cots/<i:04d>.txt` as ReasonGen-R1 writes them (the evaluator ignores them);
//!   `index` is the prompt's position in the prompt table (GenEval's line number).
//! - DPG-Bench: `images/<item_id>.png`, the 4 samples as one 2×2 grid without padding
//!   (image 0 top left, 1 top right, 2 bottom left, 3 bottom right).
//! - T2I-CompBench: `images/<category>/samples/<prompt>_<NNNNNN>.png`, NNNNNN = 10·p + j
//!   for sample j of the category's p-th prompt in val-file order.
//!
//! Counts are checked against the protocol (4, 4, 10 per prompt; `samples_per_prompt`
//! to lay out another count knowingly): a layout the evaluator would misread is an
//! error naming the prompt, never a silently short benchmark.

pub use crate::benchmark::Benchmark;
use crate::scores::{self, ScoreContext, prompt_set, read_all};
use image::{GenericImage, RgbImage};
use pipeline::{
    ArtifactKind, ArtifactType, InputSpec, Output, OutputDecl, ResultExt, Stage, StageContext,
    StageError,
};
use schemars::JsonSchema;
use schemas::eval_sample::EvalSample;
use schemas::rl_prompt::RlPrompt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Config of `eval.layout`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutConfig {
    /// Default: from the prompts' family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<Benchmark>,
    /// Images per prompt (default: the protocol's; DPG-Bench's grid needs 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_per_prompt: Option<u32>,
}

/// Why samples cannot be laid out.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("sample `{sample}`: its prompt `{prompt}` is not among the prompts")]
    UnknownPrompt { sample: String, prompt: String },
    #[error("prompt `{prompt}`: {found} images, the layout needs {wanted} (samples 0 to {last})", last = wanted.saturating_sub(1))]
    Count {
        prompt: String,
        found: usize,
        wanted: u32,
    },
    #[error("prompt `{prompt}` has two images numbered {sample}")]
    Duplicate { prompt: String, sample: u32 },
    #[error("prompt `{0}` has no GenEval record in its metadata")]
    NoRecord(String),
    #[error("prompt `{prompt}`: {message}")]
    BadPrompt { prompt: String, message: String },
    #[error("sample `{sample}`: {message}")]
    BadImage { sample: String, message: String },
    #[error("DPG-Bench's grid is 2×2: `samples_per_prompt` must be 4, not {0}")]
    DpgGrid(u32),
    #[error("no samples to lay out")]
    Empty,
}

/// One prompt's images, by sample index.
struct PromptImages<'a> {
    index: usize,
    prompt: &'a RlPrompt,
    samples: Vec<&'a EvalSample>,
}

/// Group samples by prompt in prompt-table order, each with exactly `wanted` images
/// numbered 0..wanted.
fn group<'a>(
    prompts: &'a [RlPrompt],
    samples: &'a [EvalSample],
    wanted: u32,
) -> Result<Vec<PromptImages<'a>>, LayoutError> {
    let position: HashMap<&str, usize> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let mut by_prompt: BTreeMap<usize, BTreeMap<u32, &EvalSample>> = BTreeMap::new();
    for s in samples {
        let i = *position
            .get(s.prompt_id.as_str())
            .ok_or_else(|| LayoutError::UnknownPrompt {
                sample: s.id.clone(),
                prompt: s.prompt_id.clone(),
            })?;
        if by_prompt
            .entry(i)
            .or_default()
            .insert(s.sample, s)
            .is_some()
        {
            return Err(LayoutError::Duplicate {
                prompt: s.prompt_id.clone(),
                sample: s.sample,
            });
        }
    }
    if by_prompt.is_empty() {
        return Err(LayoutError::Empty);
    }
    by_prompt
        .into_iter()
        .map(|(index, images)| {
            let prompt = &prompts[index];
            let numbered = images.keys().copied().eq(0..wanted);
            if !numbered {
                return Err(LayoutError::Count {
                    prompt: prompt.id.clone(),
                    found: images.len(),
                    wanted,
                });
            }
            Ok(PromptImages {
                index,
                prompt,
                samples: images.into_values().collect(),
            })
        })
        .collect()
}

fn decode(s: &EvalSample) -> Result<RgbImage, LayoutError> {
    let bad = |message: String| LayoutError::BadImage {
        sample: s.id.clone(),
        message,
    };
    let bytes = s
        .image
        .bytes
        .as_deref()
        .ok_or_else(|| bad("no image bytes".into()))?;
    Ok(image::load_from_memory(bytes)
        .map_err(|e| bad(e.to_string()))?
        .to_rgb8())
}

/// The sample's image as PNG bytes (as they are when already PNG).
fn png_bytes(s: &EvalSample) -> Result<Vec<u8>, LayoutError> {
    match s.image.bytes.as_deref() {
        Some(b) if b.starts_with(b"\x89PNG\r\n\x1a\n") => Ok(b.to_vec()),
        _ => encode_png(&decode(s)?, &s.id),
    }
}

fn encode_png(image: &RgbImage, id: &str) -> Result<Vec<u8>, LayoutError> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| LayoutError::BadImage {
            sample: id.into(),
            message: e.to_string(),
        })?;
    Ok(out.into_inner())
}

/// A T2I-CompBench prompt's category (its tag).
fn category_of(prompt: &RlPrompt) -> &str {
    prompt.tag.as_deref().unwrap_or("uncategorised")
}

/// Four images of one size as a 2×2 grid without padding.
pub fn grid_2x2(images: &[RgbImage], prompt: &str) -> Result<RgbImage, LayoutError> {
    let (w, h) = images[0].dimensions();
    if images.len() != 4 || images.iter().any(|i| i.dimensions() != (w, h)) {
        return Err(LayoutError::BadPrompt {
            prompt: prompt.into(),
            message: "a DPG-Bench grid needs 4 images of one size".into(),
        });
    }
    let mut grid = RgbImage::new(2 * w, 2 * h);
    for (i, image) in images.iter().enumerate() {
        let (x, y) = ((i as u32 % 2) * w, (i as u32 / 2) * h);
        grid.copy_from(image, x, y)
            .expect("each tile fits the grid");
    }
    Ok(grid)
}

/// One image file of a layout and the samples it shows (DPG's grid: four).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaidFile {
    /// Relative to the evaluator's folder (`00012/samples/0003.png`).
    pub file: String,
    pub prompt_id: String,
    pub prompt: String,
    pub tag: Option<String>,
    pub sample_ids: Vec<String>,
}

/// What was laid out.
#[derive(Clone, Debug, PartialEq)]
pub struct Laid {
    pub prompts: usize,
    /// Every image file written (DPG: grids), in order.
    pub files: Vec<LaidFile>,
    /// Side of one image in pixels.
    pub resolution: u32,
}

/// The file listing a layout's image files and their samples, one JSON line each.
pub const FILES_JSONL: &str = "files.jsonl";

fn write(path: &Path, bytes: &[u8]) -> Result<(), StageError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).context(dir.display())?;
    }
    std::fs::write(path, bytes).context(path.display())
}

/// Lay out `samples` of `prompts` for `benchmark` under `dir` (see the module doc).
pub fn lay_out(
    benchmark: Benchmark,
    prompts: &[RlPrompt],
    samples: &[EvalSample],
    wanted: u32,
    dir: &Path,
) -> Result<Laid, StageError> {
    if benchmark == Benchmark::DpgBench && wanted != 4 {
        return Err(LayoutError::DpgGrid(wanted).into());
    }
    let groups = group(prompts, samples, wanted)?;
    let first = decode(groups[0].samples[0])?;
    let resolution = first.width();
    // Each prompt's position within its T2I-CompBench category, in the file's order.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let category_position: Vec<usize> = prompts
        .iter()
        .map(|q| {
            let n = seen.entry(category_of(q)).or_default();
            *n += 1;
            *n - 1
        })
        .collect();
    let mut files = Vec::new();
    for g in &groups {
        let laid = |file: String, samples: &[&EvalSample]| LaidFile {
            file,
            prompt_id: g.prompt.id.clone(),
            prompt: g.prompt.prompt.clone(),
            tag: g.prompt.tag.clone(),
            sample_ids: samples.iter().map(|s| s.id.clone()).collect(),
        };
        match benchmark {
            Benchmark::Geneval => {
                let folder = dir.join(format!("{:05}", g.index));
                let record = g
                    .prompt
                    .metadata
                    .as_deref()
                    .ok_or_else(|| LayoutError::NoRecord(g.prompt.id.clone()))?;
                write(
                    &folder.join("metadata.jsonl"),
                    format!("{record}\n").as_bytes(),
                )?;
                for s in &g.samples {
                    let file = format!("{:05}/samples/{:04}.png", g.index, s.sample);
                    write(&dir.join(&file), &png_bytes(s)?)?;
                    if let Some(r) = &s.rationale {
                        write(
                            &folder.join("cots").join(format!("{:04}.txt", s.sample)),
                            r.as_bytes(),
                        )?;
                    }
                    files.push(laid(file, &[s]));
                }
            }
            Benchmark::DpgBench => {
                let tiles = g
                    .samples
                    .iter()
                    .map(|s| decode(s))
                    .collect::<Result<Vec<_>, _>>()?;
                let grid = grid_2x2(&tiles, &g.prompt.id)?;
                let file = format!("{}.png", g.prompt.id);
                write(&dir.join(&file), &encode_png(&grid, &g.prompt.id)?)?;
                files.push(laid(file, &g.samples));
            }
            Benchmark::T2iCompbench => {
                let text = g.prompt.prompt.trim();
                if text.contains('_') || text.contains('/') {
                    return Err(LayoutError::BadPrompt {
                        prompt: g.prompt.id.clone(),
                        message:
                            "contains `_` or `/`, which T2I-CompBench's file names cannot hold"
                                .into(),
                    }
                    .into());
                }
                let category = category_of(g.prompt);
                let p = category_position[g.index];
                for s in &g.samples {
                    let n = wanted as usize * p + s.sample as usize;
                    let file = format!("{category}/samples/{text}_{n:06}.png");
                    write(&dir.join(&file), &png_bytes(s)?)?;
                    files.push(laid(file, &[s]));
                }
            }
        }
    }
    Ok(Laid {
        prompts: groups.len(),
        files,
        resolution,
    })
}

/// What `layout.json` records: the layout, and the images' context that the official
/// evaluator nodes put beside their scores.
pub fn layout_meta(laid: &Laid, wanted: u32, context: &ScoreContext) -> serde_json::Value {
    let mut meta = context.images_json();
    meta["prompts"] = json!(laid.prompts);
    meta["files"] = json!(laid.files.len());
    meta["images"] = json!(laid.prompts * wanted as usize);
    meta["samples_per_prompt"] = json!(wanted);
    meta["resolution"] = json!(laid.resolution);
    meta
}

pub struct Layout;

/// The folder under a layout report that an evaluator reads.
pub const IMAGES_DIR: &str = "images";
/// The layout's record (benchmark, counts, resolution, the images' context).
pub const LAYOUT_JSON: &str = "layout.json";

impl Stage for Layout {
    type Config = LayoutConfig;
    const KIND: &'static str = "eval.layout";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Generated images in a benchmark's official folder layout (GenEval, DPG-Bench's 2×2 grids, T2I-CompBench), for its evaluator.";
    const INPUTS: &'static [InputSpec] = &[scores::SAMPLES, scores::PROMPTS];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Report));

    async fn run(&self, config: LayoutConfig, ctx: StageContext) -> Result<Output, StageError> {
        let samples = ctx.input("samples")?.clone();
        let prompts = ctx.input("prompts")?.clone();
        tokio::task::spawn_blocking(move || {
            let read_prompts: Vec<RlPrompt> = read_all(&prompts.dir)?;
            let rows: Vec<EvalSample> = read_all(&samples.dir)?;
            let family = prompt_set(read_prompts.iter().map(|p| p.family.as_str()));
            let benchmark =
                Benchmark::for_prompts(config.benchmark, &family).map_err(StageError::msg)?;
            let wanted = config
                .samples_per_prompt
                .unwrap_or(benchmark.samples_per_prompt());
            let laid = lay_out(
                benchmark,
                &read_prompts,
                &rows,
                wanted,
                &ctx.out_dir.join(IMAGES_DIR),
            )?;
            let context =
                ScoreContext::unjudged(benchmark.name(), &samples, rows.first(), &prompts, &family);
            let meta = layout_meta(&laid, wanted, &context);
            let mut listing = String::new();
            for f in &laid.files {
                listing.push_str(&serde_json::to_string(f).expect("json"));
                listing.push('\n');
            }
            write(&ctx.out_dir.join(FILES_JSONL), listing.as_bytes())?;
            write(
                &ctx.out_dir.join(LAYOUT_JSON),
                &serde_json::to_vec_pretty(&meta).expect("json"),
            )?;
            ctx.log(format!(
                "{}: {} prompts, {} files at {} px",
                benchmark.name(),
                laid.prompts,
                laid.files.len(),
                laid.resolution
            ));
            Ok(Output {
                rows: None,
                schema: None,
                meta,
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("layout thread: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::ImageData;

    fn prompt(id: &str, text: &str, tag: &str, record: Option<&str>) -> RlPrompt {
        RlPrompt {
            id: id.into(),
            prompt: text.into(),
            family: "test".into(),
            tag: Some(tag.into()),
            metadata: record.map(str::to_string),
        }
    }

    /// A `side`² image of one colour per (prompt, sample).
    fn samples(prompts: &[RlPrompt], n: u32, side: u32) -> Vec<EvalSample> {
        let mut out = Vec::new();
        for (p, prompt) in prompts.iter().enumerate() {
            for s in 0..n {
                let image =
                    RgbImage::from_pixel(side, side, image::Rgb([p as u8 * 40, s as u8 * 20, 7]));
                out.push(EvalSample {
                    id: format!("{}-{s}", prompt.id),
                    prompt_id: prompt.id.clone(),
                    prompt: prompt.prompt.clone(),
                    sample: s,
                    rationale: Some(format!("rationale {s}")),
                    image: ImageData::from_bytes(encode_png(&image, "x").unwrap(), None),
                    ..EvalSample::default()
                });
            }
        }
        out
    }

    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn geneval_folders_hold_the_record_and_four_numbered_samples() {
        let record = r#"{"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"}"#;
        let prompts = vec![
            prompt(
                "geneval-00000",
                "a photo of a bench",
                "single_object",
                Some(record),
            ),
            prompt(
                "geneval-00001",
                "a photo of a cow",
                "single_object",
                Some(record),
            ),
        ];
        // The rows arrive in any order: the layout follows the prompt table.
        let mut rows = samples(&prompts, 4, 16);
        rows.reverse();
        let dir = tempfile::tempdir().unwrap();
        let laid = lay_out(Benchmark::Geneval, &prompts, &rows, 4, dir.path()).unwrap();
        assert_eq!(
            (laid.prompts, laid.files.len(), laid.resolution),
            (2, 8, 16)
        );
        let files = files_under(dir.path());
        let expected: Vec<String> = (0..2)
            .flat_map(|p| {
                let mut v: Vec<String> =
                    (0..4).map(|s| format!("{p:05}/cots/{s:04}.txt")).collect();
                v.push(format!("{p:05}/metadata.jsonl"));
                v.extend((0..4).map(|s| format!("{p:05}/samples/{s:04}.png")));
                v
            })
            .collect();
        assert_eq!(files, expected);
        let meta = std::fs::read_to_string(dir.path().join("00001/metadata.jsonl")).unwrap();
        assert_eq!(meta, format!("{record}\n"));
        let s2 = std::fs::read(dir.path().join("00001/samples/0002.png")).unwrap();
        assert_eq!(
            Some(s2),
            rows.iter()
                .find(|r| r.id == "geneval-00001-2")
                .unwrap()
                .image
                .bytes
        );
        assert_eq!(laid.files[5].file, "00001/samples/0001.png");
        assert_eq!(laid.files[5].sample_ids, vec!["geneval-00001-1"]);

        // Three images of a prompt, a duplicate, a stranger, no record: each named.
        let err = |rows: &[EvalSample], prompts: &[RlPrompt]| {
            let d = tempfile::tempdir().unwrap();
            lay_out(Benchmark::Geneval, prompts, rows, 4, d.path())
                .unwrap_err()
                .to_string()
        };
        let short: Vec<EvalSample> = rows
            .iter()
            .filter(|r| r.id != "geneval-00000-3")
            .cloned()
            .collect();
        assert!(
            err(&short, &prompts).contains("prompt `geneval-00000`: 3 images, the layout needs 4")
        );
        let mut twice = rows.clone();
        twice.push(rows[0].clone());
        assert!(err(&twice, &prompts).contains("two images numbered"));
        let mut stranger = rows.clone();
        stranger[0].prompt_id = "nope".into();
        assert!(err(&stranger, &prompts).contains("its prompt `nope` is not among the prompts"));
        let bare = vec![
            prompt("geneval-00000", "x", "single_object", None),
            prompts[1].clone(),
        ];
        assert!(err(&rows, &bare).contains("no GenEval record"));
    }

    #[test]
    fn dpg_grids_are_two_by_two_without_padding_named_by_item() {
        let prompts = vec![prompt(
            "partiprompts97",
            "a long prompt",
            "partiprompts",
            None,
        )];
        let rows = samples(&prompts, 4, 384);
        let dir = tempfile::tempdir().unwrap();
        let laid = lay_out(Benchmark::DpgBench, &prompts, &rows, 4, dir.path()).unwrap();
        assert_eq!(files_under(dir.path()), vec!["partiprompts97.png"]);
        assert_eq!(laid.files[0].sample_ids.len(), 4);
        let grid = image::open(dir.path().join("partiprompts97.png"))
            .unwrap()
            .to_rgb8();
        assert_eq!(grid.dimensions(), (768, 768));
        // The evaluator's crops: (0,0), (r,0), (0,r), (r,r) are images 0, 1, 2, 3.
        for (i, (x, y)) in [(0, 0), (384, 0), (0, 384), (384, 384)]
            .into_iter()
            .enumerate()
        {
            for (dx, dy) in [(0, 0), (383, 383)] {
                assert_eq!(
                    grid.get_pixel(x + dx, y + dy).0,
                    [0, i as u8 * 20, 7],
                    "tile {i}"
                );
            }
        }
        let d = tempfile::tempdir().unwrap();
        let e = lay_out(Benchmark::DpgBench, &prompts, &rows, 9, d.path()).unwrap_err();
        assert!(e.to_string().contains("must be 4"), "{e}");
    }

    #[test]
    fn t2i_files_carry_the_prompt_and_a_category_wide_index() {
        let prompts = vec![
            prompt("color-000", "a green bench and a red car", "color", None),
            prompt("shape-000", "a round clock", "shape", None),
            prompt("color-001", "a blue bird", "color", None),
        ];
        let rows = samples(&prompts, 10, 8);
        let dir = tempfile::tempdir().unwrap();
        let laid = lay_out(Benchmark::T2iCompbench, &prompts, &rows, 10, dir.path()).unwrap();
        assert_eq!(laid.files.len(), 30);
        let files = files_under(dir.path());
        assert_eq!(files.len(), 30);
        assert!(
            files.contains(&"color/samples/a green bench and a red car_000000.png".to_string())
        );
        assert!(files.contains(&"color/samples/a blue bird_000019.png".to_string()));
        assert!(files.contains(&"shape/samples/a round clock_000009.png".to_string()));
        let bad = vec![prompt("color-000", "a red_car", "color", None)];
        let d = tempfile::tempdir().unwrap();
        let e = lay_out(
            Benchmark::T2iCompbench,
            &bad,
            &samples(&bad, 10, 8),
            10,
            d.path(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("contains `_` or `/`"), "{e}");
    }
}
