//! One row through preparation: kept with its prepared image and the record of its
//! original, or set aside as a quarantine row naming its reason.

use datasets::images::rejects::Reject;
use datasets::images::{Failure, Reason, Settings, original, prepare};
use pipeline::StageError;
use schemas::ImageData;
use schemas::source_image::SourceImage;

/// What became of one row.
pub(super) enum Outcome {
    Kept { row: SourceImage, mislabelled: bool },
    Quarantined { reject: Reject, reason: Reason },
}

/// The image path of a prepared row: the original path with the new extension, or
/// `{id}.{ext}` for a row without a path.
fn prepared_path(row: &SourceImage, ext: &str) -> String {
    match row.image.path.as_deref() {
        Some(path) => {
            let file_start = path.rfind(['/', '\\']).map_or(0, |i| i + 1);
            let stem = match path[file_start..].rfind('.') {
                Some(dot) if dot > 0 => &path[..file_start + dot],
                _ => path,
            };
            format!("{stem}.{ext}")
        }
        None => format!("{}.{ext}", row.id),
    }
}

pub(super) fn prepare_row(
    mut row: SourceImage,
    settings: &Settings,
) -> Result<Outcome, StageError> {
    let quarantine = |row: &SourceImage, reason: Reason, detail: String| Outcome::Quarantined {
        reject: Reject {
            id: row.id.clone(),
            reason: reason.name().to_string(),
            detail,
            path: row.image.path.clone(),
            source: Some(row.source.clone()),
        },
        reason,
    };
    let Some(bytes) = row.image.bytes.take() else {
        return Ok(quarantine(
            &row,
            Reason::Empty,
            "the row has no image bytes".into(),
        ));
    };
    match prepare(&bytes, row.image.path.as_deref(), settings) {
        Ok(prepared) => {
            let path = prepared_path(&row, settings.encoding.extension());
            row.metadata = Some(original::with_record(
                row.metadata.as_deref(),
                &prepared,
                bytes.len(),
            ));
            row.width = Some(settings.size);
            row.height = Some(settings.size);
            let mislabelled = prepared.header.mislabelled_as.is_some();
            row.image = ImageData::from_bytes(prepared.bytes, Some(path));
            Ok(Outcome::Kept { row, mislabelled })
        }
        Err(Failure::Rejected(r)) => Ok(quarantine(&row, r.reason, r.detail)),
        Err(Failure::Encoder(e)) => Err(StageError::msg(format!("row `{}`: {e}", row.id))),
    }
}
