//! Dataset formats: tables as Parquet shards (write, read, scan), image preparation,
//! the release export, the shapes world, the benchmarks' prompt suites
//! ([`benchmarks`]), and the project's seeded PRNG (`rng`), which every crate draws
//! from so that seeded outputs never move with a dependency.
//!
//! Nothing here knows about the engine's store or scheduler: functions take folders
//! and files and return data.

pub mod benchmarks;
pub mod images;
pub mod release;
pub mod rng;
pub mod shapes;
pub mod table;
