//! The shapes world's scenes, renders, prompts, splits, teacher and summaries.

use datasets::shapes::scene::{GAP, MARGIN, MAX_SIZE, MIN_SIZE};
use datasets::shapes::*;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

fn scenes(seed: u64, n: usize) -> Vec<Scene> {
    let mut generator = SceneGenerator::new(seed);
    (0..n)
        .map(|_| generator.random().expect("random scene"))
        .collect()
}

#[test]
fn same_seed_same_png_bytes() {
    let a = render_png(&SceneGenerator::new(42).random().unwrap(), DEFAULT_SIZE).unwrap();
    let b = render_png(&SceneGenerator::new(42).random().unwrap(), DEFAULT_SIZE).unwrap();
    let c = render_png(&SceneGenerator::new(43).random().unwrap(), DEFAULT_SIZE).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.starts_with(b"\x89PNG"));
    // The pixels themselves are pinned: our PRNG, generator and rasteriser own them.
    let pixels = render(&SceneGenerator::new(42).random().unwrap(), DEFAULT_SIZE);
    let digest = hex::encode(Sha256::digest(pixels.as_raw()));
    println!("seed 42 pixels sha256 {digest}");
    assert_eq!(digest, PINNED_PIXELS);
    // Another size renders the same scene.
    assert_eq!(
        render(&SceneGenerator::new(42).random().unwrap(), 96).dimensions(),
        (96, 96)
    );
}

const PINNED_PIXELS: &str = "782cfd51b581c0859d89838bb57ea0db9f2f69e914d0c340c4df088d9aabd17a";

#[test]
fn objects_never_overlap_and_stay_on_the_canvas() {
    let mut all = scenes(7, 300);
    let mut generator = SceneGenerator::new(8);
    for task in Task::GENEVAL {
        for record in all_prompts(task) {
            all.push(generator.for_metadata(&record).expect("scene for record"));
        }
    }
    let mut counts = [0; 5];
    for scene in &all {
        counts[scene.objects.len()] += 1;
        if let Some(gap) = scene.min_gap() {
            assert!(gap >= GAP - 1e-12, "gap {gap} in {scene:?}");
        }
        for o in &scene.objects {
            assert!((MIN_SIZE..=MAX_SIZE).contains(&o.size));
            for c in o.center {
                assert!(
                    c - o.size / 2.0 >= MARGIN - 1e-12 && c + o.size / 2.0 <= 1.0 - MARGIN + 1e-12
                );
            }
        }
    }
    println!("scenes by object count (0–4): {counts:?}");
    assert!(counts[1..].iter().all(|&n| n > 0));
}

#[test]
fn scenes_meet_their_records_exactly() {
    let mut generator = SceneGenerator::new(9);
    for task in Task::GENEVAL {
        for record in all_prompts(task) {
            let scene = generator.for_metadata(&record).unwrap();
            let want: usize = record.include.iter().map(|inc| inc.count).sum();
            assert_eq!(scene.objects.len(), want, "{}", record.prompt);
            assert!(
                scene.satisfies(&record, DEFAULT_SIZE).correct,
                "{}",
                record.prompt
            );
        }
    }
    // A contradictory record has no scene.
    let mut bad = all_prompts(Task::Counting).remove(0);
    bad.exclude[0].count = bad.include[0].count;
    assert!(matches!(
        generator.for_metadata(&bad),
        Err(ShapesError::Layout(_))
    ));
}

fn held_out_phrases() -> Vec<String> {
    let held = HeldOut::standard();
    let mut phrases: Vec<String> = held
        .color_shapes
        .iter()
        .map(|(c, s)| format!("{} {}", c.name(), s.name()))
        .collect();
    for (r, s) in &held.relation_shapes {
        phrases.push(format!("{} {}", s.name(), r.name()));
        phrases.push(format!("{} a {}", r.inverse().name(), s.name()));
    }
    phrases
}

#[test]
fn held_out_pairs_never_reach_training_prompts() {
    let held = HeldOut::standard();
    let set = prompt_set(5, &TaskCounts::uniform(10_000), &held);
    let phrases = held_out_phrases();
    let (train, test): (Vec<_>, Vec<_>) = set.iter().partition(|p| p.split == Split::Train);
    for p in &train {
        for phrase in &phrases {
            assert!(
                !p.metadata.prompt.contains(phrase.as_str()),
                "{} has {phrase}",
                p.metadata.prompt
            );
        }
        for inc in &p.metadata.include {
            if let Some(c) = inc.color {
                assert!(!held.holds_color(c, inc.class));
            }
        }
    }
    for p in &test {
        assert!(
            phrases
                .iter()
                .any(|ph| p.metadata.prompt.contains(ph.as_str())),
            "{}",
            p.metadata.prompt
        );
    }
    let by_task = |t: Task| test.iter().filter(|p| p.metadata.tag == t).count();
    println!(
        "held out: {} of {} prompts (colors {}, position {}, color_attr {})",
        test.len(),
        set.len(),
        by_task(Task::Colors),
        by_task(Task::Position),
        by_task(Task::ColorAttr)
    );
    assert!(
        by_task(Task::Colors) > 0 && by_task(Task::Position) > 0 && by_task(Task::ColorAttr) > 0
    );

    // Training scenes avoid the pairs too, in colors and in any relation between objects.
    let mut generator = SceneGenerator::new(11).avoiding(held.clone());
    for _ in 0..200 {
        let scene = generator.random().unwrap();
        assert!(held.allows_scene(&scene));
        let caption = detailed_caption(&scene);
        for (c, s) in &held.color_shapes {
            assert!(
                !caption.contains(&format!("{} {}", c.name(), s.name())),
                "{caption}"
            );
        }
    }
    for p in &train {
        assert!(held.allows_scene(&generator.for_metadata(&p.metadata).unwrap()));
    }
    let red_square = test
        .iter()
        .find(|p| p.metadata.prompt.contains("red square"))
        .expect("a red square prompt");
    assert!(matches!(
        generator.for_metadata(&red_square.metadata),
        Err(ShapesError::HeldOut(_))
    ));
}

#[test]
fn prompt_sets_are_distinct_seeded_and_capped() {
    let sizes: Vec<usize> = Task::GENEVAL
        .iter()
        .map(|&t| all_prompts(t).len())
        .collect();
    assert_eq!(sizes, vec![4, 12, 12, 40, 48, 1080]);
    let counts = TaskCounts {
        single_object: 10,
        two_object: 5,
        counting: 5,
        colors: 20,
        position: 20,
        color_attr: 100,
    };
    let a = prompt_set(1, &counts, &HeldOut::default());
    assert_eq!(a, prompt_set(1, &counts, &HeldOut::default()));
    assert_ne!(a, prompt_set(2, &counts, &HeldOut::default()));
    assert_eq!(a.len(), 4 + 5 + 5 + 20 + 20 + 100);
    let distinct: HashSet<&str> = a.iter().map(|p| p.metadata.prompt.as_str()).collect();
    assert_eq!(distinct.len(), a.len());
    assert!(a.iter().all(|p| p.split == Split::Train));
    for task in Task::GENEVAL {
        for record in all_prompts(task) {
            assert!(
                record.prompt.starts_with("a photo of "),
                "{}",
                record.prompt
            );
        }
    }
    let counting = all_prompts(Task::Counting);
    assert!(
        counting
            .iter()
            .any(|r| r.prompt == "a photo of four triangles"
                && r.include[0].count == 4
                && r.exclude[0].count == 5)
    );
    assert!(
        all_prompts(Task::ColorAttr)
            .iter()
            .any(|r| r.prompt == "a photo of an orange circle and a white square")
    );
}

/// GenEval lines (`evaluation_metadata.jsonl`), one per task, with their class
/// replaced by ours: our writer must give them back byte for byte.
#[test]
fn metadata_json_is_genevals() {
    let lines = [
        (
            r#"{"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"}"#,
            vec![("bench", "circle")],
        ),
        (
            r#"{"tag": "two_object", "include": [{"class": "bench", "count": 1}, {"class": "sports ball", "count": 1}], "prompt": "a photo of a bench and a sports ball"}"#,
            vec![("bench", "square"), ("sports ball", "triangle")],
        ),
        (
            r#"{"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}], "prompt": "a photo of two clocks"}"#,
            vec![("clock", "diamond")],
        ),
        (
            r#"{"tag": "colors", "include": [{"class": "cup", "count": 1, "color": "pink"}], "prompt": "a photo of a pink cup"}"#,
            vec![("cup", "circle")],
        ),
        (
            r#"{"tag": "position", "include": [{"class": "teddy bear", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}], "prompt": "a photo of a dog right of a teddy bear"}"#,
            vec![("teddy bear", "square"), ("dog", "triangle")],
        ),
        (
            r#"{"tag": "color_attr", "include": [{"class": "wine glass", "count": 1, "color": "purple"}, {"class": "apple", "count": 1, "color": "black"}], "prompt": "a photo of a purple wine glass and a black apple"}"#,
            vec![("wine glass", "diamond"), ("apple", "circle")],
        ),
    ];
    for (task, (line, renames)) in Task::GENEVAL.into_iter().zip(&lines) {
        let ours = renames
            .iter()
            .fold(line.to_string(), |l, (from, to)| l.replace(from, to));
        let record = all_prompts(task)
            .into_iter()
            .find(|r| r.to_json() == ours)
            .unwrap_or_else(|| panic!("no {} record writes {ours}", task.tag()));
        assert_eq!(Metadata::from_json(&ours).unwrap(), record);
    }
    // GenEval's own records are read as far as they are about shapes (COCO classes are
    // not), with an error that names the problem.
    let err = Metadata::from_json(lines[0].0).unwrap_err().to_string();
    assert!(err.contains("bench"), "{err}");
}

#[test]
fn terse_teacher_names_each_object_by_place_then_noun_in_reading_order() {
    const PLACES: [&str; 9] = [
        "Top left",
        "Top",
        "Top right",
        "Left",
        "Center",
        "Right",
        "Bottom left",
        "Bottom",
        "Bottom right",
    ];
    let third = |v: f64| ((v * 3.0).floor() as usize).min(2);
    for scene in scenes(23, 200) {
        let terse = terse_caption(&scene);
        assert_eq!(terse, terse_caption(&scene), "deterministic");
        let detailed = detailed_caption(&scene);
        assert!(
            terse.split(' ').count() < detailed.split(' ').count(),
            "{terse} | {detailed}"
        );
        let mut sentences = terse.split(". ");
        let opening = sentences.next().unwrap();
        assert!(opening.contains(" on gray"), "{terse}");
        // One clause per object, in reading order: rows of thirds, then left to right.
        let mut objects = scene.objects.clone();
        objects.sort_by(|a, b| {
            third(a.center[1])
                .cmp(&third(b.center[1]))
                .then(a.center[0].total_cmp(&b.center[0]))
        });
        let clauses: Vec<&str> = sentences.collect();
        assert_eq!(clauses.len(), objects.len(), "{terse}");
        for (clause, o) in clauses.iter().zip(&objects) {
            let place = PLACES[3 * third(o.center[1]) + third(o.center[0])];
            let (said, noun) = clause.trim_end_matches('.').split_once(": ").unwrap();
            assert_eq!(said, place, "{terse}");
            assert!(
                noun.ends_with(&format!("{} {}", o.color.name(), o.shape.name())),
                "{clause} for {o:?}"
            );
        }
    }
}

#[test]
fn a_terse_caption_reads_back_as_what_it_states() {
    let mut paraphrase_sets = HashSet::new();
    for scene in scenes(29, 200) {
        let terse = terse_caption(&scene);
        let read = read_terse_caption(&terse).unwrap_or_else(|| panic!("unread: {terse}"));
        assert_eq!(terse_caption(&read), terse);
        assert_eq!(read.objects.len(), scene.objects.len());
        // The augmented prompts depend on what the caption states, not on the exact
        // places and sizes, so an LLM given only the caption can write the same.
        let prompts = augmented_prompts(&scene);
        assert_eq!(augmented_prompts(&read), prompts, "{terse}");
        paraphrase_sets.insert(prompts.paraphrases);
        assert_eq!(read_terse_caption(&detailed_caption(&scene)), None);
    }
    assert!(paraphrase_sets.len() > 20, "the wording still varies");
    for bad in [
        "A single shape on gray. Top left: a small red square",
        "A single shape on gray. Top left: a tiny red square.",
        "A single shape on gray. Middle: a small red square.",
        "A single shape on gray. Top left: a small teal square.",
        "Two shapes on gray. Top left: a small red square.",
        "A single shape on gray. Top left: a small red square. Top: a small red circle.",
    ] {
        assert_eq!(read_terse_caption(bad), None, "{bad}");
    }
    assert!(read_terse_caption("A single shape on gray. Top left: a small red square.").is_some());
}

#[test]
fn teacher_mentions_every_object_with_color_and_shape() {
    let mut openings = HashSet::new();
    for scene in scenes(21, 200) {
        let caption = detailed_caption(&scene);
        assert_eq!(caption, detailed_caption(&scene), "deterministic");
        assert!(caption.contains("gray background"), "{caption}");
        openings.insert(caption.split(' ').take(3).collect::<Vec<_>>().join(" "));
        let prompts = augmented_prompts(&scene);
        let short = prompts.short_caption.clone().unwrap_or_default();
        for o in &scene.objects {
            let colored = format!("{} {}", o.color.name(), o.shape.name());
            // Counted groups read "two red circles", which contains "red circle".
            assert!(
                caption.contains(&colored),
                "{colored} missing from {caption}"
            );
            assert!(short.contains(&colored), "{colored} missing from {short}");
            assert!(prompts.tags.contains(&colored));
            assert!(prompts.object_prompts.iter().any(|p| p.contains(&colored)));
        }
        assert!((2..=4).contains(&prompts.paraphrases.len()));
        assert_eq!(prompts.varied_captions.len(), 3);
        assert_eq!(prompts.object_prompts.len(), scene.objects.len() + 1);
        assert_eq!(
            prompts.object_prompts.last().map(String::as_str),
            Some("a plain gray background")
        );
        // The teacher's record is the scene's truth, and its prompt is the short caption.
        let record = scene_metadata(&scene);
        assert_eq!(record.prompt, short);
        assert!(
            scene.satisfies(&record, DEFAULT_SIZE).correct,
            "{}",
            record.to_json()
        );
    }
    println!("{} distinct caption openings", openings.len());
    assert!(openings.len() >= 3);
}

#[test]
fn renders_pass_their_teacher_record_and_fail_others() {
    let judge = Judge::default();
    let all = scenes(31, 150);
    let records: Vec<Metadata> = all.iter().map(scene_metadata).collect();
    let mut results = Vec::new();
    let (mut false_passes, mut pairs) = (0, 0);
    for (i, scene) in all.iter().enumerate() {
        let found = judge.detect(&render(scene, DEFAULT_SIZE));
        results.push((
            &records[i],
            judge::evaluate(&found, &records[i], &judge.options).correct,
        ));
        let other = &records[(i + 1) % records.len()];
        if !scene.satisfies(other, DEFAULT_SIZE).correct {
            pairs += 1;
            false_passes += usize::from(judge::evaluate(&found, other, &judge.options).correct);
        }
    }
    let summary = Summary::new(results);
    println!("{summary}mismatched scene records passed: {false_passes}/{pairs}");
    assert!(
        summary.correct_images * 100 >= summary.images * 99,
        "{summary}"
    );
    assert!(false_passes * 50 <= pairs);
}

#[test]
fn summary_prints_genevals_format() {
    let a = all_prompts(Task::SingleObject).remove(0);
    let b = all_prompts(Task::Counting).remove(0);
    let c = all_prompts(Task::Counting).remove(1);
    let summary = Summary::new([(&a, true), (&a, false), (&b, false), (&c, true)]);
    assert_eq!(summary.task(Task::Counting), Some(0.5));
    assert!((summary.overall() - 0.5).abs() < 1e-12);
    let text = summary.to_string();
    for line in [
        "Total images: 4",
        "Total prompts: 3",
        "% correct images: 50.00%",
        "% correct prompts: 66.67%",
        "single_object    = 50.00% (1 / 2)",
        "counting         = 50.00% (1 / 2)",
        "Overall score (avg. over tasks): 0.50000",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
}

#[test]
fn degradation_is_seeded() {
    let image = render(&scenes(41, 1)[0], DEFAULT_SIZE);
    let d = perturb::Degradation::default();
    let a = d.apply(&image).unwrap();
    assert_eq!(a, d.apply(&image).unwrap());
    assert_ne!(
        a,
        perturb::Degradation { seed: 1, ..d }.apply(&image).unwrap()
    );
    assert_ne!(a, image);
    assert_eq!(a.dimensions(), image.dimensions());
}

#[test]
fn judge_reads_encoded_images() {
    let judge = Judge::default();
    let record = all_prompts(Task::Colors).remove(7);
    let scene = SceneGenerator::new(3).for_metadata(&record).unwrap();
    let png = render_png(&scene, DEFAULT_SIZE).unwrap();
    assert!(judge.score_encoded(&png, &record).unwrap().correct);
    let wrong = all_prompts(Task::Colors).remove(8);
    let verdict = judge.score_encoded(&png, &wrong).unwrap();
    println!(
        "{} judged against {:?}: {:?}",
        record.prompt, wrong.prompt, verdict.reason
    );
    assert!(!verdict.correct && !verdict.reason.is_empty());
    assert!(matches!(
        judge.score_encoded(b"not an image", &record),
        Err(ShapesError::Image(_))
    ));
}
