//! The memo record of a finished URL, so that a re-run (after a kill, or of an edited
//! list) fetches nothing twice: an image as a small JSON header and its bytes after it,
//! or a definitive failure as its reason, detail and status. The key is the URL with
//! the settings that could change its outcome (byte cap, redirect limit, opt-outs).

use super::config::FetchConfig;
use super::get::Fetched;
use super::reason::{Failure, Reason};
use super::sniff::Sniffed;
use pipeline::Digest;
use serde::{Deserialize, Serialize};

/// The memo namespace.
pub const NAMESPACE: &str = "images.fetch";

/// The memo key of `url` under `config`.
pub fn key(url: &str, config: &FetchConfig) -> Digest {
    Digest::of_json(&serde_json::json!({
        "url": url,
        "max_bytes": config.max_bytes,
        "max_redirects": config.max_redirects,
        "opt_out": config.respect_opt_out.then_some((
            &config.opt_out_directives,
            &config.user_agent_token,
        )),
    }))
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Header {
    Image {
        format: String,
        size: Option<(u32, u32)>,
    },
    Failed {
        reason: String,
        detail: String,
        status: Option<u16>,
    },
}

/// The record of an outcome.
pub fn encode(outcome: &Result<Fetched, Failure>) -> Vec<u8> {
    let (header, body): (Header, &[u8]) = match outcome {
        Ok(f) => (
            Header::Image {
                format: f.image.format.clone(),
                size: f.image.size,
            },
            &f.bytes,
        ),
        Err(f) => (
            Header::Failed {
                reason: f.reason.name().into(),
                detail: f.detail.clone(),
                status: f.status,
            },
            &[],
        ),
    };
    let header = serde_json::to_vec(&header).expect("memo headers serialise");
    let mut out = Vec::with_capacity(4 + header.len() + body.len());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out
}

/// The outcome of a record, or `None` for a record this version cannot read (then
/// the URL is fetched again).
pub fn decode(record: &[u8]) -> Option<Result<Fetched, Failure>> {
    let len = u32::from_le_bytes(record.get(..4)?.try_into().ok()?) as usize;
    let header: Header = serde_json::from_slice(record.get(4..4 + len)?).ok()?;
    let body = &record[4 + len..];
    Some(match header {
        Header::Image { format, size } => Ok(Fetched {
            bytes: body.to_vec(),
            image: Sniffed { format, size },
        }),
        Header::Failed {
            reason,
            detail,
            status,
        } => Err(Failure {
            reason: Reason::from_name(&reason)?,
            detail,
            status,
            retry_after: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_keys_follow_the_settings() {
        let image = Ok(Fetched {
            bytes: vec![0xff, 0xd8, 1, 2, 3],
            image: Sniffed {
                format: "jpeg".into(),
                size: Some((3, 2)),
            },
        });
        assert_eq!(decode(&encode(&image)), Some(image));
        let failed = Err(Failure::http(404, None));
        assert_eq!(decode(&encode(&failed)), Some(failed));
        assert_eq!(decode(b"\x05\0"), None);
        let c = FetchConfig::default();
        let capped = FetchConfig {
            max_bytes: 10,
            ..c.clone()
        };
        assert_eq!(key("http://a/x", &c), key("http://a/x", &c));
        assert_ne!(key("http://a/x", &c), key("http://a/y", &c));
        assert_ne!(key("http://a/x", &c), key("http://a/x", &capped));
    }
}
