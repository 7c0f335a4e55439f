//! A batch input file being written: one JSONL line per request
//! (`{"custom_id": <request key>, "method": "POST", "url": <endpoint>, "body": …}`),
//! with its keys and size, so that it is submitted before it passes the API's limits.

use pipeline::{Digest, StageError};
use std::collections::HashSet;
use std::io::Write;

pub struct Spool {
    url_json: String,
    bytes: Vec<u8>,
    keys: HashSet<Digest>,
}

impl Spool {
    /// An empty spool for requests to `endpoint` (`/v1/chat/completions`).
    pub fn new(endpoint: &str) -> Spool {
        Spool {
            url_json: serde_json::to_string(endpoint).expect("strings serialise"),
            bytes: Vec::new(),
            keys: HashSet::new(),
        }
    }

    /// Bytes the line of a body of `body_len` bytes takes (113: the framing and the
    /// 64 hex digits of the key).
    pub fn line_len(&self, body_len: usize) -> u64 {
        (body_len + self.url_json.len() + 113) as u64
    }

    /// Add a request; a key already in the spool is not added twice.
    pub fn push(&mut self, key: Digest, body: &[u8]) -> Result<(), StageError> {
        if !self.keys.insert(key) {
            return Ok(());
        }
        write!(
            self.bytes,
            r#"{{"custom_id":"{key}","method":"POST","url":{},"body":"#,
            self.url_json
        )
        .map_err(StageError::from)?;
        self.bytes.extend_from_slice(body);
        self.bytes.extend_from_slice(b"}\n");
        Ok(())
    }

    pub fn contains(&self, key: &Digest) -> bool {
        self.keys.contains(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The file's content and keys, leaving the spool empty.
    pub fn take(&mut self) -> (Vec<u8>, HashSet<Digest>) {
        (
            std::mem::take(&mut self.bytes),
            std::mem::take(&mut self.keys),
        )
    }
}
