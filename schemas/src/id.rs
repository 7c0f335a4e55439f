//! `name@version`: the identity of a table schema.

use std::fmt;
use std::str::FromStr;

/// A schema name and version, written `name@version`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaId {
    pub name: String,
    pub version: u32,
}

impl SchemaId {
    pub fn new(name: &str, version: u32) -> Self {
        SchemaId {
            name: name.to_string(),
            version,
        }
    }
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a schema id (expected name@version, e.g. sft_sample@1)")]
pub struct BadSchemaId(String);

impl FromStr for SchemaId {
    type Err = BadSchemaId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, version) = s.split_once('@').ok_or_else(|| BadSchemaId(s.into()))?;
        let version = version.parse().map_err(|_| BadSchemaId(s.into()))?;
        if name.is_empty() {
            return Err(BadSchemaId(s.into()));
        }
        Ok(SchemaId::new(name, version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_ids_round_trip_and_reject_garbage() {
        let id: SchemaId = "sft_sample@3".parse().unwrap();
        assert_eq!(id, SchemaId::new("sft_sample", 3));
        assert_eq!(id.to_string(), "sft_sample@3");
        for bad in ["sft_sample", "@1", "x@", "x@one"] {
            assert!(bad.parse::<SchemaId>().is_err(), "{bad}");
        }
    }
}
