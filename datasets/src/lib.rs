//! Dataset formats: tables as Parquet shards (write, read, scan), and later the sources,
//! the release export, the shapes world and the benchmark prompt suites.
//!
//! Nothing here knows about the engine's store or scheduler: functions take folders
//! and files and return data.

pub mod images;
pub mod release;
pub mod rng;
pub mod shapes;
pub mod table;
