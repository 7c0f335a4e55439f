//! Split assignment by a seeded hash of the row id: a row keeps its split however the
//! dataset grows or is re-sharded.

use sha2::{Digest, Sha256};

/// Named splits with their fractions, in assignment order.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    splits: Vec<(String, f64)>,
    seed: u64,
}

impl Splits {
    /// Fractions must be positive and sum to 1.
    pub fn new(splits: Vec<(String, f64)>, seed: u64) -> Result<Splits, String> {
        if splits.is_empty() {
            return Err("no splits given".into());
        }
        for (name, f) in &splits {
            if !(*f > 0.0 && *f <= 1.0) {
                return Err(format!(
                    "split `{name}` has fraction {f}; it must be in (0, 1]"
                ));
            }
            let ok =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(format!("split name `{name}` must be letters, digits or _"));
            }
        }
        let sum: f64 = splits.iter().map(|(_, f)| f).sum();
        if (sum - 1.0).abs() > 1e-9 {
            return Err(format!("split fractions sum to {sum}, not 1"));
        }
        Ok(Splits { splits, seed })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.splits.iter().map(|(n, _)| n.as_str())
    }

    pub fn len(&self) -> usize {
        self.splits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.splits.is_empty()
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn fractions(&self) -> &[(String, f64)] {
        &self.splits
    }

    /// The index of the split row `id` belongs to.
    pub fn assign(&self, id: &str) -> usize {
        let mut h = Sha256::new();
        h.update(self.seed.to_le_bytes());
        h.update(id.as_bytes());
        let d = h.finalize();
        let x = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        let mut acc = 0.0;
        for (i, (_, f)) in self.splits.iter().enumerate() {
            acc += f;
            if u < acc {
                return i;
            }
        }
        self.splits.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_stable_and_proportional() {
        let s = Splits::new(vec![("train".into(), 0.9), ("test".into(), 0.1)], 7).unwrap();
        let ids: Vec<String> = (0..20_000).map(|i| format!("row-{i}")).collect();
        let test = ids.iter().filter(|id| s.assign(id) == 1).count();
        assert!((1800..2200).contains(&test), "{test}");
        // The same id, the same split, whatever else is in the dataset.
        assert_eq!(s.assign("row-17"), s.assign("row-17"));
        let other_seed = Splits::new(vec![("train".into(), 0.9), ("test".into(), 0.1)], 8).unwrap();
        let moved = ids
            .iter()
            .filter(|id| s.assign(id) != other_seed.assign(id))
            .count();
        assert!(moved > 1000, "the seed matters");
    }

    #[test]
    fn bad_fractions_are_refused() {
        assert!(Splits::new(vec![("train".into(), 0.5)], 0).is_err());
        assert!(Splits::new(vec![("a".into(), 1.2), ("b".into(), -0.2)], 0).is_err());
        assert!(Splits::new(vec![("bad name".into(), 1.0)], 0).is_err());
        assert!(Splits::new(vec![], 0).is_err());
    }
}
