//! The memo benchmark: a fresh store, N keys of V-byte values.

use super::rss_mib;
use anyhow::Result;
use pipeline::{Digest, Store};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct MemoBenchArgs {
    /// Number of keys.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Records per transaction in the batched insert phase.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Single-record (one commit each) inserts to time.
    #[arg(long, default_value_t = 20_000)]
    single: u64,
}

fn key(i: u64) -> Digest {
    Digest::of_bytes(&i.to_le_bytes())
}

fn value(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i as usize).wrapping_mul(31).wrapping_add(j) as u8)
        .collect()
}

pub fn run(args: MemoBenchArgs) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let memo = store.memo("bench")?;
    let (rss0, _) = rss_mib();
    println!(
        "memo benchmark: {} keys, {}-byte values, store in a temp folder",
        args.keys, args.value_bytes
    );

    let t = Instant::now();
    let mut i = 0u64;
    while i < args.keys {
        let end = (i + args.batch as u64).min(args.keys);
        let batch: Vec<(Digest, Vec<u8>)> = (i..end)
            .map(|k| (key(k), value(k, args.value_bytes)))
            .collect();
        memo.put_many(batch.iter().map(|(k, v)| (k, v.as_slice())))?;
        i = end;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  insert, {} per transaction: {:>10.0} inserts/s ({:.1} s)",
        args.batch,
        args.keys as f64 / secs,
        secs
    );

    let t = Instant::now();
    for k in args.keys..args.keys + args.single {
        memo.put(&key(k), &value(k, args.value_bytes))?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  insert, one commit each:  {:>10.0} inserts/s ({} inserts, crash-safe on return)",
        args.single as f64 / secs,
        args.single
    );

    // Lookups in a scattered order over all keys.
    let n = args.keys;
    let t = Instant::now();
    let mut found = 0u64;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if memo.get(&key(x % args.keys))?.is_some() {
            found += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(found == n, "lookups of stored keys missed: {found}/{n}");
    println!(
        "  lookup, hits:             {:>10.0} lookups/s ({n} random keys)",
        n as f64 / secs
    );

    let misses = (n / 10).max(1);
    let t = Instant::now();
    for k in 0..misses {
        anyhow::ensure!(memo.get(&key(u64::MAX - k))?.is_none(), "unexpected hit");
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  lookup, misses:           {:>10.0} lookups/s",
        misses as f64 / secs
    );

    let (rss, peak) = rss_mib();
    let db = dir.path().join("memo").join("memo.sqlite");
    let size = std::fs::metadata(&db).map_or(0, |m| m.len()) as f64 / 1048576.0;
    println!(
        "  memory: RSS {rss:.0} MiB (peak {peak:.0} MiB, {rss0:.0} MiB before); database {size:.0} MiB on disk"
    );
    Ok(ExitCode::SUCCESS)
}
