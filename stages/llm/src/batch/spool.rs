//! Requests waiting to go into a batch input file, one JSONL line each
//! (`{"custom_id": <request key>, "method": "POST", "url": <endpoint>, "body": …}`), in
//! arrival order, each with its worst-case cost; a file is cut from the front within
//! the API's limits and what the budgets admit.

use pipeline::{Digest, StageError};
use std::collections::{HashSet, VecDeque};
use std::io::Write;

/// One request's line.
pub struct Line {
    pub key: Digest,
    /// Its worst-case cost in nano-dollars.
    pub worst: u64,
    bytes: Vec<u8>,
}

pub struct Spool {
    url_json: String,
    lines: VecDeque<Line>,
    keys: HashSet<Digest>,
}

/// A batch input file cut from the spool.
pub struct File {
    pub content: Vec<u8>,
    pub lines: Vec<Line>,
}

impl Spool {
    /// An empty spool for requests to `endpoint` (`/v1/chat/completions`).
    pub fn new(endpoint: &str) -> Spool {
        Spool {
            url_json: serde_json::to_string(endpoint).expect("strings serialise"),
            lines: VecDeque::new(),
            keys: HashSet::new(),
        }
    }

    /// Add a request; a key already in the spool is not added twice.
    pub fn push(&mut self, key: Digest, body: &[u8], worst: u64) -> Result<(), StageError> {
        if !self.keys.insert(key) {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(body.len() + self.url_json.len() + 113);
        write!(
            bytes,
            r#"{{"custom_id":"{key}","method":"POST","url":{},"body":"#,
            self.url_json
        )
        .map_err(StageError::from)?;
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(b"}\n");
        self.lines.push_back(Line { key, worst, bytes });
        Ok(())
    }

    pub fn contains(&self, key: &Digest) -> bool {
        self.keys.contains(key)
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Whether it holds a full file's worth (`max_requests` lines or `max_bytes`).
    pub fn is_full(&self, max_requests: usize, max_bytes: u64) -> bool {
        self.lines.len() >= max_requests
            || self.lines.iter().map(|l| l.bytes.len() as u64).sum::<u64>() >= max_bytes
    }

    /// The longest front of at most `max_requests` lines and `max_bytes` bytes (at
    /// least one line) whose lines `admit` accepts, in order, until it refuses one.
    pub fn cut(
        &mut self,
        max_requests: usize,
        max_bytes: u64,
        mut admit: impl FnMut(&Line) -> bool,
    ) -> Option<File> {
        let mut n = 0;
        let mut size = 0u64;
        for line in &self.lines {
            let len = line.bytes.len() as u64;
            if n == max_requests || (n > 0 && size + len > max_bytes) || !admit(line) {
                break;
            }
            n += 1;
            size += len;
        }
        if n == 0 {
            return None;
        }
        let lines: Vec<Line> = self.lines.drain(..n).collect();
        let mut content = Vec::with_capacity(size as usize);
        for l in &lines {
            self.keys.remove(&l.key);
            content.extend_from_slice(&l.bytes);
        }
        Some(File { content, lines })
    }

    /// Drop every waiting request (sending stopped).
    pub fn clear(&mut self) {
        self.lines.clear();
        self.keys.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> Digest {
        Digest::of_bytes(&[i])
    }

    #[test]
    fn files_are_cut_within_the_limits_and_what_is_admitted() {
        let mut s = Spool::new("/v1/chat/completions");
        for i in 0..5 {
            s.push(key(i), br#"{"model":"m"}"#, 10 * i as u64).unwrap();
        }
        s.push(key(0), b"{}", 0).unwrap();
        assert!(s.is_full(5, u64::MAX) && !s.is_full(6, u64::MAX));
        let f = s.cut(2, u64::MAX, |_| true).unwrap();
        assert_eq!(f.lines.len(), 2);
        assert_eq!(f.content.iter().filter(|&&b| b == b'\n').count(), 2);
        assert!(!s.contains(&key(0)) && s.contains(&key(2)));
        // The budget admits 20 + 30 of what is left, and refuses 40.
        let mut left = 50;
        let f = s
            .cut(10, u64::MAX, |l| {
                let ok = l.worst <= left;
                left = left.saturating_sub(l.worst);
                ok
            })
            .unwrap();
        assert_eq!(
            f.lines.iter().map(|l| l.worst).collect::<Vec<_>>(),
            [20, 30]
        );
        assert!(s.cut(10, u64::MAX, |_| false).is_none());
        // One line always fits the byte limit.
        assert_eq!(s.cut(10, 1, |_| true).unwrap().lines.len(), 1);
        assert!(s.is_empty());
    }
}
