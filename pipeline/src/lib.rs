//! The reasongen engine: recipes, the typed DAG, the `Stage` trait and registry, the
//! content-addressed artifact store, run keys and incremental runs, the item-level memo,
//! the executors (the scheduler; nodes run in process or as Slurm jobs), events and
//! progress, and money caps shared by a run's nodes.
//!
//! This crate knows nothing of images, tables or models: stages (in the crates above
//! it) do the work; the engine decides what runs, gives each node its inputs and a
//! private folder, and publishes what it wrote.

pub mod artifact;
pub mod budget;
pub mod console;
pub mod context;
pub mod digest;
pub mod estimate;
pub mod events;
pub mod executor;
pub mod faults;
pub mod key;
pub mod memo;
pub mod plan;
pub mod program;
pub mod progress;
pub mod recipe;
pub mod registry;
pub mod shard;
pub mod stage;
pub mod store;

pub use artifact::{ArtifactKind, Content, Manifest};
pub use context::{InputArtifact, StageContext, Tracker};
pub use digest::Digest;
pub use registry::Registry;
pub use stage::{
    Arity, ArtifactType, Bindings, InputSpec, Output, OutputDecl, Resources, ResultExt, Stage,
    StageError,
};
pub use store::Store;
