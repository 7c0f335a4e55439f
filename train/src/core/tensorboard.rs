//! TensorBoard event files, written by hand: TFRecord framing (length, masked CRC32C of
//! the length, data, masked CRC32C of the data) around `Event` protobufs, the first one
//! `file_version: "brain.Event:2"`, then one per step holding that step's scalars as
//! `Summary.Value { tag, simple_value }`.
//!
//! The file is content-addressed with its model, so it holds no clock: each event's
//! `wall_time` is its step (in seconds), which makes the file a function of the metrics
//! alone and TensorBoard's "relative" axis read as steps. The file name carries a fixed
//! timestamp (0) for the same reason.

use std::collections::BTreeMap;

/// The event file's name (TensorBoard reads any file whose name holds `tfevents`).
pub const FILE: &str = "events.out.tfevents.0.reasongen";

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: event files are
/// small.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// TFRecord's masked CRC: rotated right by 15 bits plus a constant.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xA282_EAD8)
}

/// One TFRecord: the length (u64, little-endian), its masked CRC, the data, its masked
/// CRC.
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A field key: field number and wire type (0 varint, 1 fixed64, 2 bytes, 5 fixed32).
fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// `Event { wall_time = 1 (double), step = 2 (int64), file_version = 3 | summary = 5 }`.
fn event(step: i64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut e = Vec::new();
    key(&mut e, 1, 1);
    e.extend_from_slice(&(step as f64).to_le_bytes());
    key(&mut e, 2, 0);
    varint(&mut e, step as u64);
    body(&mut e);
    e
}

/// `Summary { repeated Value value = 1 }`, `Value { tag = 1, simple_value = 2 (float) }`.
fn summary(values: &[(String, f32)]) -> Vec<u8> {
    let mut s = Vec::new();
    for (tag, v) in values {
        let mut value = Vec::new();
        bytes_field(&mut value, 1, tag.as_bytes());
        key(&mut value, 2, 5);
        value.extend_from_slice(&v.to_le_bytes());
        bytes_field(&mut s, 1, &value);
    }
    s
}

/// A whole event file: the version record, then one event per step (ascending) with
/// its scalars.
pub fn events(scalars: &BTreeMap<u64, Vec<(String, f32)>>) -> Vec<u8> {
    let mut out = record(&event(0, |e| bytes_field(e, 3, b"brain.Event:2")));
    for (&step, values) in scalars {
        let data = event(step as i64, |e| bytes_field(e, 5, &summary(values)));
        out.extend_from_slice(&record(&data));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn records_are_framed_as_tfrecord() {
        // Masked CRCs computed by the `tensorboard` package's own implementation.
        assert_eq!(masked_crc32c(&5u64.to_le_bytes()), 0x3E04_B2EA);
        assert_eq!(masked_crc32c(b"hello"), 0x191C_1FBB);
        let r = record(b"hello");
        assert_eq!(r.len(), 8 + 4 + 5 + 4);
        assert_eq!(&r[..8], &5u64.to_le_bytes());
        assert_eq!(&r[8..12], &0x3E04_B2EAu32.to_le_bytes());
        assert_eq!(&r[12..17], b"hello");
        assert_eq!(&r[17..], &0x191C_1FBBu32.to_le_bytes());
    }

    #[test]
    fn varints_take_seven_bits_a_byte() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xAC, 0x02]);
    }
}
