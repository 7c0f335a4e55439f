//! The samples the report shows: `count` rows spread evenly over the table (the same
//! ones on every run), their images copied into the report's `samples/` folder as they
//! are stored, with the prompt and rationale beside them.

use datasets::table::TableReader;
use pipeline::{ResultExt, StageError};
use schemas::sft_sample::SftSample;
use std::path::Path;

/// One sample as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub id: String,
    /// The image file, relative to the report folder (none if the row has no bytes).
    pub file: Option<String>,
    pub prompt: String,
    pub rationale: String,
}

/// The prompt a sample is most simply asked with: its short caption, else its first
/// candidate of any family.
fn prompt(s: &SftSample) -> String {
    let p = &s.prompts;
    p.short_caption
        .clone()
        .or_else(|| {
            [
                &p.paraphrases,
                &p.varied_captions,
                &p.object_prompts,
                &p.tags,
            ]
            .into_iter()
            .find_map(|family| family.first().cloned())
        })
        .unwrap_or_default()
}

/// The extension of encoded image bytes.
fn extension(bytes: &[u8]) -> &'static str {
    match imagesize::image_type(bytes) {
        Ok(imagesize::ImageType::Png) => "png",
        Ok(imagesize::ImageType::Gif) => "gif",
        Ok(imagesize::ImageType::Webp) => "webp",
        _ => "jpg",
    }
}

/// Pick `count` of the `total` rows of the samples in `dir`, writing their images
/// under `out_dir/samples/`.
pub fn pick(
    dir: &Path,
    total: u64,
    count: usize,
    out_dir: &Path,
) -> Result<Vec<Shown>, StageError> {
    let count = (count as u64).min(total);
    let wanted: Vec<u64> = (0..count).map(|i| i * total / count.max(1)).collect();
    let folder = out_dir.join("samples");
    std::fs::create_dir_all(&folder).context(folder.display())?;
    let mut shown = Vec::with_capacity(wanted.len());
    let mut next = wanted.iter().peekable();
    let mut pos = 0u64;
    for rows in TableReader::open(dir)?.rows::<SftSample>()? {
        for s in rows? {
            if next.next_if(|&&w| w == pos).is_some() {
                let file = match s.image.bytes.as_deref() {
                    Some(bytes) => {
                        let name = format!("samples/{:02}.{}", shown.len(), extension(bytes));
                        let path = out_dir.join(&name);
                        std::fs::write(&path, bytes).context(path.display())?;
                        Some(name)
                    }
                    None => None,
                };
                shown.push(Shown {
                    prompt: prompt(&s),
                    id: s.id,
                    file,
                    rationale: s.rationale,
                });
            }
            pos += 1;
        }
        if next.peek().is_none() {
            break;
        }
    }
    Ok(shown)
}
