//! What fetched bytes are, from their first bytes alone: the server's `Content-Type`
//! is not trusted (a JPEG served as `text/html` is an image; an HTML error page served
//! as `image/jpeg` is not).

/// An image recognised in fetched bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sniffed {
    /// The format, lower case (`jpeg`, `png`, `webp`, …), also the file extension.
    pub format: String,
    /// From the header, when it can be read.
    pub size: Option<(u32, u32)>,
}

/// The image in `bytes`, or what the bytes start with.
pub fn sniff(bytes: &[u8]) -> Result<Sniffed, String> {
    match imagesize::image_type(bytes) {
        Ok(kind) => Ok(Sniffed {
            format: match kind {
                imagesize::ImageType::Jpeg => "jpeg".into(),
                other => format!("{other:?}").to_ascii_lowercase(),
            },
            size: imagesize::blob_size(bytes)
                .ok()
                .map(|s| (s.width as u32, s.height as u32)),
        }),
        Err(_) => {
            let start: String = bytes
                .iter()
                .take(16)
                .flat_map(|b| std::ascii::escape_default(*b))
                .map(char::from)
                .collect();
            Err(format!(
                "{} bytes of no image format, starting `{start}`",
                bytes.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x07\0\0\0\x05\x08\x02\0\0\0";
        let found = sniff(png).unwrap();
        assert_eq!(found.format, "png");
        assert_eq!(found.size, Some((7, 5)));
        let html = sniff(b"<!DOCTYPE html><html>").unwrap_err();
        assert!(html.contains("<!DOCTYPE"), "{html}");
        assert!(sniff(b"").is_err());
    }
}
