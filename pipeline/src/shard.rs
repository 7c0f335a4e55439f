//! Shards of a node's item work: which of `n` shards an item belongs to, by its memo
//! key. A node whose stage is shardable runs as `n` shard processes that each fill the
//! item memo for their own items and publish nothing, then once as usual (the merge),
//! which finds every item memoised. Running and submitting the shards is the
//! executors' business; skipping other shards' items is the stage's.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Shard `index` of `count` (`index < count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 || index >= count {
            return Err(format!(
                "shard {index}/{count}: the index must be below the count, which must be at least 1"
            ));
        }
        Ok(Shard { index, count })
    }

    /// `k/n`, as `exec-node --shard` takes it.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("shard `{text}`: expected `k/n` (e.g. 0/3)"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|e| format!("shard `{text}`: `{s}` is not a number ({e})"))
        };
        Shard::new(number(k)?, number(n)?)
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether the item whose memo key is `key` is this shard's.
    pub fn holds(&self, key: &Digest) -> bool {
        shard_of(key, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(out, "{}/{}", self.index, self.count)
    }
}

/// The shard of `count` that the item keyed `key` belongs to (keys are uniform digests,
/// so shards are even in expectation).
pub fn shard_of(key: &Digest, count: u32) -> u32 {
    let head: [u8; 8] = key.as_bytes()[..8]
        .try_into()
        .expect("digests are 32 bytes");
    (u64::from_le_bytes(head) % u64::from(count.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shards_parse_from_k_of_n_and_bad_ones_say_why() {
        assert_eq!(Shard::parse("2/3").unwrap(), Shard::new(2, 3).unwrap());
        assert_eq!(Shard::parse("2/3").unwrap().to_string(), "2/3");
        for (bad, why) in [
            ("3/3", "below the count"),
            ("0/0", "at least 1"),
            ("1", "expected `k/n`"),
            ("a/3", "`a` is not a number"),
        ] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    proptest! {
        #[test]
        fn every_item_is_in_exactly_one_shard(count in 1u32..17, items in 1usize..200, salt: u64) {
            let shards: Vec<Shard> = (0..count).map(|k| Shard::new(k, count).unwrap()).collect();
            let mut sizes = vec![0usize; count as usize];
            for i in 0..items {
                let key = Digest::of_json(&(salt, i));
                let holders: Vec<u32> =
                    shards.iter().filter(|s| s.holds(&key)).map(Shard::index).collect();
                prop_assert_eq!(holders.len(), 1, "item {} is in shards {:?}", i, holders);
                prop_assert_eq!(holders[0], shard_of(&key, count));
                sizes[holders[0] as usize] += 1;
            }
            prop_assert_eq!(sizes.iter().sum::<usize>(), items);
        }
    }

    #[test]
    fn shards_split_many_items_about_evenly() {
        let mut sizes = [0u32; 3];
        for i in 0..3000u32 {
            sizes[shard_of(&Digest::of_json(&i), 3) as usize] += 1;
        }
        assert!(sizes.iter().all(|&s| (800..1200).contains(&s)), "{sizes:?}");
    }
}
