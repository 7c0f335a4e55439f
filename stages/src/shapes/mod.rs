//! The shapes world as stages: scenes (images, scene graphs, prompts), prompt sets for
//! RL and evaluation, and the exact teacher. The world itself is `datasets::shapes`.

pub mod held_out;
pub mod prompts;
pub mod scenes;
pub mod teacher;

use pipeline::Registry;

pub fn register(registry: &mut Registry) {
    registry.register(scenes::ShapesScenes);
    registry.register(prompts::ShapesPrompts);
    registry.register(teacher::ShapesTeacher);
}
