//! `source.image_folder`: a local folder of images, with optional sidecar captions,
//! into a `source_image` table.
//!
//! Images are the files with extension jpg, jpeg, png, webp, gif or bmp (any case), in
//! sub-folders too when `recursive`; rows come in the order of their relative paths.
//! A row's id is the relative path without extension (`/`-separated), its image the
//! file's bytes unchanged with the relative path, its width and height read from the
//! file header (null if unreadable: nothing is decoded here). Sidecars beside an image
//! `NAME.ext`: `NAME.txt` holds the caption (trimmed); `NAME.json` is an object whose
//! `caption_key` holds the caption (when there is no `.txt`), whose number `aesthetic`
//! fills `aesthetic`, and whose other keys go into `metadata` as a JSON object.
//! Images are read a batch at a time.

use super::{BATCH_ROWS, Tracker, output};
use datasets::table::{ShardOptions, ShardWriter, TableSummary};
use pipeline::store::FileHasher;
use pipeline::{
    ArtifactType, Digest, InputSpec, Output, OutputDecl, ResultExt, Stage, StageContext, StageError,
};
use schemars::JsonSchema;
use schemas::ImageData;
use schemas::source_image::{SCHEMA, SourceImage};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Extensions (lower case) of the files read as images.
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp"];

/// Config of `source.image_folder`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageFolderConfig {
    /// The folder of images, relative to the recipe's folder; as written here it is
    /// each row's `source`.
    pub path: String,
    /// Also read the images in sub-folders (their ids keep the sub-folder path).
    #[serde(default = "yes")]
    pub recursive: bool,
    /// The key of the caption in `NAME.json` sidecars.
    #[serde(default = "default_caption_key")]
    pub caption_key: String,
}

fn yes() -> bool {
    true
}

fn default_caption_key() -> String {
    "caption".to_string()
}

/// The extension of `name` if it is an image's, as written.
fn image_extension(name: &str) -> Option<&str> {
    let (_, ext) = name.rsplit_once('.')?;
    IMAGE_EXTENSIONS
        .contains(&ext.to_ascii_lowercase().as_str())
        .then_some(ext)
}

/// A row's id: the relative path without its extension.
fn id_of(rel: &str) -> &str {
    image_extension(rel).map_or(rel, |ext| &rel[..rel.len() - ext.len() - 1])
}

/// The relative paths (`/`-separated) of the images under `root`, sorted. Two images
/// that would share an id (`a.jpg`, `a.png`) are an error.
pub fn list_images(root: &Path, recursive: bool) -> Result<Vec<String>, StageError> {
    let mut found = Vec::new();
    let mut folders = vec![String::new()];
    while let Some(folder) = folders.pop() {
        let dir = root.join(&folder);
        for entry in std::fs::read_dir(&dir).context(dir.display())? {
            let path = entry.context(dir.display())?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_str()
                .ok_or_else(|| {
                    StageError::msg(format!("{}: the file name is not UTF-8", path.display()))
                })?;
            let rel = if folder.is_empty() {
                name.to_string()
            } else {
                format!("{folder}/{name}")
            };
            if path.is_dir() {
                if recursive {
                    folders.push(rel);
                }
            } else if image_extension(name).is_some() {
                found.push(rel);
            }
        }
    }
    found.sort();
    let mut ids: HashMap<&str, &str> = HashMap::with_capacity(found.len());
    for rel in &found {
        if let Some(other) = ids.insert(id_of(rel), rel) {
            return Err(StageError::msg(format!(
                "{}: `{other}` and `{rel}` would both have id `{}`; rename one",
                root.display(),
                id_of(rel)
            )));
        }
    }
    Ok(found)
}

/// What the sidecars of an image say.
#[derive(Default)]
struct Sidecar {
    caption: Option<String>,
    aesthetic: Option<f64>,
    metadata: Option<String>,
}

/// The sidecar file `image` with extension `ext`, if there is one.
fn read_sidecar(image: &Path, ext: &str) -> Result<Option<(PathBuf, String)>, StageError> {
    let path = image.with_extension(ext);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path, text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StageError::msg(format!("{}: {e}", path.display()))),
    }
}

fn sidecar(image: &Path, caption_key: &str) -> Result<Sidecar, StageError> {
    let mut out = Sidecar::default();
    if let Some((path, text)) = read_sidecar(image, "json")? {
        let mut object: Map<String, Value> = serde_json::from_str(&text)
            .map_err(|e| StageError::msg(format!("{}: not a JSON object: {e}", path.display())))?;
        out.caption = match object.remove(caption_key) {
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(Value::Null) | None => None,
            Some(other) => {
                return Err(StageError::msg(format!(
                    "{}: `{caption_key}` must be a string, not {other}",
                    path.display()
                )));
            }
        };
        out.aesthetic = object.get("aesthetic").and_then(Value::as_f64);
        if out.aesthetic.is_some() {
            object.remove("aesthetic");
        }
        out.metadata = (!object.is_empty()).then(|| Value::Object(object).to_string());
    }
    if let Some((_, text)) = read_sidecar(image, "txt")? {
        out.caption = Some(text.trim().to_string());
    }
    out.caption = out.caption.filter(|c| !c.is_empty());
    Ok(out)
}

/// The row of the image at `rel` under `root`.
fn image_row(
    root: &Path,
    rel: &str,
    config: &ImageFolderConfig,
) -> Result<SourceImage, StageError> {
    let path = root.join(rel);
    let bytes = std::fs::read(&path).context(path.display())?;
    let size = imagesize::blob_size(&bytes).ok();
    let dimension = |v: usize| u32::try_from(v).ok();
    let side = sidecar(&path, &config.caption_key)?;
    Ok(SourceImage {
        id: id_of(rel).to_string(),
        width: size.as_ref().and_then(|s| dimension(s.width)),
        height: size.as_ref().and_then(|s| dimension(s.height)),
        image: ImageData::from_bytes(bytes, Some(rel.to_string())),
        caption: side.caption,
        source: config.path.clone(),
        aesthetic: side.aesthetic,
        metadata: side.metadata,
    })
}

/// Read the folder `config` names (relative to `recipe_dir`) into a `source_image`
/// table in `out_dir`.
pub fn write_image_folder(
    config: &ImageFolderConfig,
    recipe_dir: &Path,
    out_dir: &Path,
    tracker: &impl Tracker,
) -> Result<TableSummary, StageError> {
    let root = pipeline::context::resolve_against(recipe_dir, &config.path);
    let images = list_images(&root, config.recursive)?;
    if images.is_empty() {
        return Err(StageError::msg(format!(
            "{}: no images ({}) in the folder",
            root.display(),
            IMAGE_EXTENSIONS.join(", ")
        )));
    }
    tracker.total(images.len() as u64, "images");
    let schema = Arc::new(SCHEMA.arrow_schema());
    let mut writer = ShardWriter::new(out_dir, schema, ShardOptions::default());
    for batch in images.chunks(BATCH_ROWS) {
        let rows = batch
            .iter()
            .map(|rel| image_row(&root, rel, config))
            .collect::<Result<Vec<_>, _>>()?;
        writer.write(&schemas::to_batch(&rows)?)?;
        tracker.advance(rows.len() as u64)?;
    }
    Ok(writer.finish()?)
}

pub struct ImageFolder;

impl Stage for ImageFolder {
    type Config = ImageFolderConfig;
    const KIND: &'static str = "source.image_folder";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Read a folder of images (jpg, jpeg, png, webp, gif, bmp) with optional NAME.txt / NAME.json caption sidecars into source_image rows.";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("source_image"));

    fn externals(
        config: &ImageFolderConfig,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        let root = pipeline::context::resolve_against(recipe_dir, &config.path);
        let digest = files.digest(&root).context(root.display())?;
        Ok(vec![(format!("folder {}", config.path), digest)])
    }

    async fn run(
        &self,
        config: ImageFolderConfig,
        ctx: StageContext,
    ) -> Result<Output, StageError> {
        super::blocking("source.image_folder", move || {
            let summary = write_image_folder(&config, &ctx.recipe_dir, &ctx.out_dir, &ctx)?;
            ctx.count("images", summary.rows);
            Ok(output(&summary, &SCHEMA))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_drop_only_an_image_extension() {
        assert_eq!(id_of("a/b/cat.JPG"), "a/b/cat");
        assert_eq!(id_of("x.y.png"), "x.y");
        assert_eq!(image_extension("notes.txt"), None);
        assert_eq!(image_extension("noext"), None);
    }
}
