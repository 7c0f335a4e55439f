//! The shapes world's lattice layouts and the bindings preset of held-out compositions.

use datasets::shapes::judge::relative_position;
use datasets::shapes::*;
use std::collections::HashSet;

fn lattice(slots: Vec<u32>) -> Lattice {
    Lattice {
        cells: 8,
        object_cells: 3,
        slots,
    }
}

/// The cell an object's box starts at on each axis, when it lies on cell boundaries.
fn start_cells(obj: &Object, l: &Lattice) -> Option<[u32; 2]> {
    let cells = f64::from(l.cells);
    let side = obj.size * cells;
    let starts = obj.center.map(|c| c * cells - side / 2.0);
    let on_grid = |v: f64| (v - v.round()).abs() < 1e-9;
    (on_grid(side) && side.round() as u32 == l.object_cells && starts.iter().all(|&s| on_grid(s)))
        .then(|| starts.map(|s| s.round() as u32))
}

#[test]
fn the_terse_caption_of_a_lattice_render_is_the_scenes() {
    // The shapes recipe's lattice: the detector's boxes place and size every object as
    // the scene does, so a caption written from the image is the teacher's.
    let l = Lattice {
        cells: 16,
        object_cells: 3,
        slots: vec![0, 4, 12],
    };
    let judge = Judge::new(JudgeOptions::default());
    let mut generator = SceneGenerator::new(5).on_lattice(l);
    let mut kinds = HashSet::new();
    for _ in 0..300 {
        let scene = generator.random().expect("a lattice scene");
        let seen = Scene::from_detections(&judge.detect(&render(&scene, 64)), 64);
        assert_eq!(terse_caption(&seen), terse_caption(&scene));
        kinds.insert(scene.objects.len());
    }
    assert_eq!(kinds.len(), 4, "one to four objects");
}

#[test]
fn lattice_objects_sit_on_cells_and_allowed_slots() {
    for slots in [vec![], vec![0, 2, 5]] {
        let l = lattice(slots.clone());
        let mut generator = SceneGenerator::new(3).on_lattice(l.clone());
        let mut seen = HashSet::new();
        for _ in 0..300 {
            let scene = generator.random().expect("a lattice scene");
            assert!(scene.min_gap().is_none_or(|g| g >= scene::GAP), "{scene:?}");
            for obj in &scene.objects {
                let start =
                    start_cells(obj, &l).unwrap_or_else(|| panic!("off the lattice: {obj:?}"));
                for s in start {
                    assert!(s + l.object_cells <= l.cells);
                    assert!(
                        slots.is_empty() || slots.contains(&s),
                        "{s} not in {slots:?}"
                    );
                    seen.insert(s);
                }
            }
        }
        let expected: HashSet<u32> = if slots.is_empty() {
            (0..=5).collect()
        } else {
            slots.into_iter().collect()
        };
        assert_eq!(seen, expected, "every allowed start is used");
    }
    // Records are met on the lattice too, position prompts included.
    let mut generator = SceneGenerator::new(4).on_lattice(lattice(vec![0, 2, 5]));
    for task in [Task::Position, Task::ColorAttr, Task::Counting] {
        for record in all_prompts(task).iter().take(40) {
            let scene = generator.for_metadata(record).expect("a layout");
            assert!(scene.satisfies(record, DEFAULT_SIZE).correct, "{record:?}");
        }
    }
}

#[test]
fn lattice_objects_of_one_kind_render_to_identical_patches() {
    // Two scenes with a red circle at different lattice places: the 8×8 patches under
    // the objects are the same pixels, which is what makes a patch tokenizer exact.
    let l = lattice(vec![]);
    let circle = |start: [u32; 2]| Object {
        shape: Shape::Circle,
        color: Color::Red,
        center: start.map(|s| (f64::from(s) + 1.5) / 8.0),
        size: 3.0 / 8.0,
    };
    let a = render(
        &Scene {
            objects: vec![circle([0, 0])],
        },
        64,
    );
    let b = render(
        &Scene {
            objects: vec![circle([4, 5])],
        },
        64,
    );
    for y in 0..24 {
        for x in 0..24 {
            assert_eq!(a.get_pixel(x, y), b.get_pixel(x + 32, y + 40), "({x}, {y})");
        }
    }
    assert!(l.validate().is_ok());
    let too_big = Lattice {
        object_cells: 4,
        ..l
    };
    assert!(matches!(too_big.validate(), Err(ShapesError::Layout(_))));
    let off = Lattice {
        slots: vec![6],
        ..lattice(vec![])
    };
    assert!(off.validate().is_err());
}

#[test]
fn bindings_are_held_out_of_training_prompts_and_scenes_but_not_their_parts() {
    let held = HeldOut::bindings();
    assert_eq!(held.bindings.len(), 110);
    assert!(held.color_shapes.is_empty());
    let all: Vec<Metadata> = all_prompts(Task::ColorAttr);
    let held_prompts: Vec<&Metadata> = all
        .iter()
        .filter(|m| held.split_of(m) == Split::HeldOut)
        .collect();
    assert_eq!((held_prompts.len(), all.len()), (220, 1080));
    // Every color and every shape is in some held-out binding.
    for c in Color::ALL {
        assert!(
            held.bindings.iter().flatten().any(|(hc, _)| *hc == c),
            "{c:?}"
        );
    }
    // Training scenes never show a held-out binding, yet show every colored shape.
    let mut generator = SceneGenerator::new(9)
        .avoiding(held.clone())
        .on_lattice(lattice(vec![0, 2, 5]));
    let mut colored = HashSet::new();
    for _ in 0..2000 {
        let scene = generator.random().unwrap();
        assert!(held.allows_scene(&scene));
        let pairs: Vec<(Color, Shape)> = scene.objects.iter().map(|o| (o.color, o.shape)).collect();
        assert_eq!(held.held_binding(&pairs), None);
        colored.extend(pairs);
    }
    assert_eq!(colored.len(), Color::ALL.len() * Shape::ALL.len());
    // A held-out binding asked for by a record is refused with its reason.
    let err = generator.for_metadata(held_prompts[0]).unwrap_err();
    assert!(
        matches!(err, ShapesError::HeldOut(ref m) if m.contains("held-out binding")),
        "{err}"
    );
    // Six relations between two shapes are held out, in both phrasings: 12 of the 48
    // position prompts, while each shape stays in every relation with other shapes.
    let position = all_prompts(Task::Position);
    let held_position: Vec<&str> = position
        .iter()
        .filter(|m| held.split_of(m) == Split::HeldOut)
        .map(|m| m.prompt.as_str())
        .collect();
    assert_eq!(held_position.len(), 12, "{held_position:?}");
    for prompt in [
        "a photo of a circle above a triangle",
        "a photo of a triangle below a circle",
    ] {
        assert!(held_position.contains(&prompt), "{held_position:?}");
    }
    for shape in Shape::ALL {
        for relation in ["above", "below", "left of", "right of"] {
            let phrase = format!("a {} {relation} a", shape.name());
            assert!(
                position
                    .iter()
                    .any(|m| held.split_of(m) == Split::Train && m.prompt.contains(&phrase)),
                "no training prompt has {phrase:?}"
            );
        }
    }
    // Training scenes never show a held-out relation as the judge sees relations: 300
    // scenes of training position prompts and 300 random ones.
    let mut generator = SceneGenerator::new(4)
        .avoiding(held.clone())
        .on_lattice(lattice(vec![0, 2, 5]));
    let train_position: Vec<&Metadata> = position
        .iter()
        .filter(|m| held.split_of(m) == Split::Train)
        .collect();
    for i in 0..300 {
        let scene = generator
            .for_metadata(train_position[i % train_position.len()])
            .unwrap();
        let random = generator.random().unwrap();
        for scene in [scene, random] {
            for a in &scene.objects {
                for b in scene.objects.iter().filter(|b| b.shape != a.shape) {
                    let rels = relative_position(
                        &a.bbox(DEFAULT_SIZE),
                        &b.bbox(DEFAULT_SIZE),
                        JudgeOptions::default().position_threshold,
                    );
                    for rel in rels {
                        assert!(!held.holds_placement(a.shape, rel, b.shape), "{scene:?}");
                    }
                }
            }
        }
    }
}
