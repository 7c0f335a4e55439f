//! Image cells in the forms sources use, turned into the Hugging Face image struct
//! (`struct{bytes, path}`): an image struct already (its `bytes` binary or base64
//! text), raw binary, a base64 string, or a `data:image/...;base64,...` URL. The image
//! bytes are kept as they are: nothing is decoded as an image here.

use super::mapping::Misfit;
use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, StructArray, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use std::sync::Arc;

/// Standard base64, with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The bytes a text cell holds: a `data:` URL with base64 payload, or plain base64.
pub(crate) fn decode_text(text: &str) -> Result<Vec<u8>, String> {
    let payload = match text.strip_prefix("data:") {
        Some(url) => match url.split_once(',') {
            Some((header, payload)) if header.ends_with(";base64") => payload,
            _ => return Err("a data URL without a `;base64,` payload".to_string()),
        },
        None => text,
    };
    BASE64
        .decode(payload.trim())
        .map_err(|e| format!("neither a base64 string nor a data URL ({e})"))
}

fn is_text(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn is_binary(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

fn cast_to(array: &ArrayRef, ty: &DataType) -> Result<ArrayRef, Misfit> {
    cast(array, ty).map_err(|e| Misfit::all(e.to_string()))
}

/// Image bytes from binary cells as they are, or from text cells decoded.
fn bytes_of(array: &ArrayRef) -> Result<ArrayRef, Misfit> {
    let ty = array.data_type();
    if is_binary(ty) {
        return cast_to(array, &DataType::Binary);
    }
    if !is_text(ty) {
        return Err(Misfit::all(format!(
            "image bytes must be binary, base64 text or a data URL, not {ty}"
        )));
    }
    let text = cast_to(array, &DataType::Utf8)?;
    let mut out = BinaryBuilder::with_capacity(text.len(), 0);
    for (i, cell) in text.as_string::<i32>().iter().enumerate() {
        match cell {
            Some(t) => out.append_value(decode_text(t).map_err(|why| Misfit::at(i, why))?),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// An image column as the image struct (`schemas::image_type`).
pub(crate) fn image_array(array: &ArrayRef) -> Result<ArrayRef, Misfit> {
    let (bytes, path, nulls) = match array.data_type() {
        DataType::Struct(_) => {
            let s = array.as_struct();
            let bytes = s
                .column_by_name("bytes")
                .ok_or_else(|| Misfit::all("an image struct without a `bytes` field"))?;
            let path = match s.column_by_name("path") {
                Some(p) if p.data_type() != &DataType::Null => cast_to(p, &DataType::Utf8)?,
                _ => new_null_array(&DataType::Utf8, s.len()),
            };
            (bytes_of(bytes)?, path, s.nulls().cloned())
        }
        _ => {
            let bytes = bytes_of(array)?;
            let nulls = bytes.nulls().cloned();
            (bytes, new_null_array(&DataType::Utf8, array.len()), nulls)
        }
    };
    let DataType::Struct(fields) = schemas::image_type() else {
        unreachable!("the image type is a struct")
    };
    let image = StructArray::try_new(fields, vec![bytes, path], nulls)
        .map_err(|e| Misfit::all(e.to_string()))?;
    Ok(Arc::new(image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose;

    #[test]
    fn text_cells_decode_from_base64_and_data_urls() {
        let raw = b"\x89PNG\r\n\x1a\n".to_vec();
        let b64 = general_purpose::STANDARD.encode(&raw);
        assert_eq!(decode_text(&b64).unwrap(), raw);
        assert_eq!(
            decode_text(&format!("data:image/png;base64,{b64}")).unwrap(),
            raw
        );
        assert_eq!(decode_text(b64.trim_end_matches('=')).unwrap(), raw);
        assert!(
            decode_text("data:image/png,rawtext")
                .unwrap_err()
                .contains("data URL")
        );
        assert!(decode_text("not base64!").unwrap_err().contains("base64"));
    }
}
