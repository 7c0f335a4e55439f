//! `eval.clip` on the tiny random CLIP of `tests/data/tiny_clip/`. A random model
//! cannot judge colours or prompts, so these tests check structure, labels, counts and
//! arithmetic, and compare with numbers computed independently (the numpy golden
//! cosines; the colour classifier rebuilt from plain text embeddings).

use super::*;
use crate::clip::tests::tiny_dir;
use schemas::ImageData;

fn clip() -> Clip {
    Clip::load(&tiny_dir(), &Device::Cpu).unwrap()
}

fn png_bytes(name: &str) -> Vec<u8> {
    std::fs::read(tiny_dir().join(name)).unwrap()
}

const IMAGES: [&str; 4] = [
    "square_red_blue.png",
    "square_noise.png",
    "wide_48x40.png",
    "tall_30x45.png",
];

fn prompt(id: &str, text: &str, tag: &str, metadata: Option<&str>) -> RlPrompt {
    RlPrompt {
        id: id.into(),
        prompt: text.into(),
        family: "test".into(),
        tag: Some(tag.into()),
        metadata: metadata.map(str::to_string),
    }
}

fn sample(i: usize, prompt_id: &str, image: &str) -> EvalSample {
    EvalSample {
        id: format!("s{i}"),
        benchmark: "t2i_compbench".into(),
        prompt_id: prompt_id.into(),
        image: ImageData::from_bytes(png_bytes(image), None),
        ..EvalSample::default()
    }
}

fn context(judge: &str) -> ScoreContext {
    ScoreContext {
        benchmark: "t2i_compbench".into(),
        prompt_set: "test".into(),
        prompt_set_version: "v".into(),
        judge: judge.into(),
        judge_kind: "substitute",
        model: "m".into(),
        samples: "d".into(),
        settings: Value::Null,
    }
}

#[test]
fn clipscore_is_the_raw_cosine_of_the_numpy_reference() {
    let golden: Value =
        serde_json::from_slice(&std::fs::read(tiny_dir().join("golden.json")).unwrap()).unwrap();
    let cos = candle_core::safetensors::load(tiny_dir().join("golden.safetensors"), &Device::Cpu)
        .unwrap()["cosine"]
        .to_vec2::<f32>()
        .unwrap();
    let clip = clip();
    let images: Vec<RgbImage> = IMAGES[..2]
        .iter()
        .map(|n| image::load_from_memory(&png_bytes(n)).unwrap().to_rgb8())
        .collect();
    let p = |i: usize| golden["prompts"][i].as_str().unwrap();
    // Image 0 with prompt 0, image 1 with prompt 2 and again with prompt 0.
    let ours = clipscore::scores(
        &clip,
        &[images[0].clone(), images[1].clone(), images[1].clone()],
        &[p(0), p(2), p(0)],
    )
    .unwrap();
    let want = [cos[0][0], cos[1][2], cos[1][0]];
    for (o, w) in ours.iter().zip(want) {
        assert!((o - f64::from(w)).abs() < 1e-5, "{o} vs {w}");
    }
}

#[test]
fn t2i_clipscore_scores_every_image_per_category_labelled_substitute() {
    let clip = clip();
    let prompts = vec![
        prompt("p0", "a photo of a red cube", "color", None),
        prompt("p1", "a blue sphere", "color", None),
        prompt("p2", "two green cones", "non_spatial", None),
    ];
    let samples: Vec<EvalSample> = (0..6)
        .map(|i| sample(i, ["p0", "p1", "p2"][i % 3], IMAGES[i % 4]))
        .collect();
    let mut judging = Judging::new(&clip, ClipTask::T2iClipscore, prompts.clone()).unwrap();
    // Two table batches, forward passes of 4: batches cross both.
    judging.push(samples[..5].to_vec(), 4).unwrap();
    judging.push(samples[5..].to_vec(), 4).unwrap();
    let e = judging.finish(200, 1).unwrap();
    assert_eq!((e.images, e.prompts, e.skipped_images), (6, 3, 0));
    let scores: Vec<f64> = e.verdicts.iter().map(|v| v.score.unwrap()).collect();
    assert!(
        scores.iter().all(|s| (-1.0..=1.0).contains(s)),
        "{scores:?}"
    );
    assert!(e.verdicts.iter().all(|v| v.image.bytes.is_none()));
    assert_eq!(
        e.verdicts.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["s0", "s1", "s2", "s3", "s4", "s5"]
    );
    let mean = scores.iter().sum::<f64>() / 6.0;
    assert!((e.overall - mean).abs() < 1e-12);
    assert!(e.interval.0 <= e.overall && e.overall <= e.interval.1);
    let color = (scores[0] + scores[1] + scores[3] + scores[4]) / 4.0;
    assert_eq!(e.categories.len(), 2);
    assert_eq!(
        (
            e.categories[0].name.as_str(),
            e.categories[0].prompts,
            e.categories[0].images
        ),
        ("color", 2, 4)
    );
    assert!((e.categories[0].score - color).abs() < 1e-12);
    // The same image and prompt score the same, whatever the batch.
    let again = clipscore::scores(
        &clip,
        &[image::load_from_memory(&png_bytes(IMAGES[0]))
            .unwrap()
            .to_rgb8()],
        &["a photo of a red cube"],
    )
    .unwrap();
    assert!((again[0] - scores[0]).abs() < 1e-6);

    let judge = judge_label(&clip, ClipTask::T2iClipscore);
    assert!(
        judge.starts_with("substitute: CLIP reasongen/tiny-random-clip (ViT 2×32 /8 @32"),
        "{judge}"
    );
    assert!(judge.ends_with("t2i_clipscore"), "{judge}");
    let rows = score_rows(&e, &context(&judge));
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r.judge == judge && r.judge_kind == "substitute")
    );
    assert_eq!((rows[0].task.as_str(), rows[0].images), ("overall", 6));
    let md = report(&e, &judge);
    assert!(
        md.starts_with(
            "# T2I-CompBench CLIPScore (substitute judge: CLIP reasongen/tiny-random-clip"
        ),
        "{md}"
    );
    assert!(md.contains("| non_spatial |"), "{md}");

    let mut judging = Judging::new(&clip, ClipTask::T2iClipscore, prompts).unwrap();
    let e = judging
        .push(vec![sample(9, "nope", IMAGES[0])], 4)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sample `s9`") && e.contains("no prompt `nope`"),
        "{e}"
    );
}

const RED_CUBE: &str = r#"{"tag": "colors", "include": [{"class": "cube", "count": 1, "color": "red"}], "prompt": "a photo of a red cube"}"#;

fn color_record(tag: &str, clauses: &[(&str, &str)]) -> String {
    let include: Vec<Value> = clauses
        .iter()
        .map(|(class, color)| json!({"class": class, "count": 1, "color": color}))
        .collect();
    json!({"tag": tag, "include": include, "prompt": "p"}).to_string()
}

/// The winning colour of `class` for `image`, computed without [`color::Classifiers`]:
/// each template embedded alone, averaged and normalised in plain arithmetic.
fn expected_colour(clip: &Clip, image: &RgbImage, class: &str) -> &'static str {
    let img = clip
        .image_embeddings(std::slice::from_ref(image))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
        .remove(0);
    let mut best = ("", f32::MIN);
    for c in color::COLORS {
        let mut mean = vec![0f32; img.len()];
        for t in color::templates(c, class) {
            let e = clip
                .text_embeddings(&[t.as_str()])
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
                .remove(0);
            mean.iter_mut().zip(e).for_each(|(m, x)| *m += x / 3.0);
        }
        let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        let score: f32 = mean.iter().zip(&img).map(|(m, x)| m / norm * x).sum();
        if score > best.1 {
            best = (c, score);
        }
    }
    best.0
}

#[test]
fn geneval_color_checks_every_required_colour_and_skips_other_tasks() {
    let clip = clip();
    let image = image::load_from_memory(&png_bytes(IMAGES[2]))
        .unwrap()
        .to_rgb8();
    let won = expected_colour(&clip, &image, "cube");
    let lost = color::COLORS.iter().find(|c| **c != won).unwrap();
    let sphere = expected_colour(&clip, &image, "sphere");
    let prompts = vec![
        prompt(
            "right",
            "a photo of a cube",
            "colors",
            Some(&color_record("colors", &[("cube", won)])),
        ),
        prompt(
            "wrong",
            "a photo of a cube",
            "colors",
            Some(&color_record("colors", &[("cube", lost)])),
        ),
        prompt(
            "both",
            "a cube and a sphere",
            "color_attr",
            Some(&color_record(
                "color_attr",
                &[("cube", won), ("sphere", sphere)],
            )),
        ),
        prompt(
            "half",
            "a cube and a sphere",
            "color_attr",
            Some(&color_record(
                "color_attr",
                &[("cube", lost), ("sphere", sphere)],
            )),
        ),
        prompt(
            "pos",
            "a cube left of a sphere",
            "position",
            Some(r#"{"tag": "position", "include": [{"class": "cube", "count": 1}]}"#),
        ),
    ];
    let samples = ["right", "wrong", "pos", "both", "half", "pos"]
        .iter()
        .enumerate()
        .map(|(i, p)| sample(i, p, IMAGES[2]))
        .collect();
    let mut judging = Judging::new(&clip, ClipTask::GenevalColor, prompts).unwrap();
    judging.push(samples, 2).unwrap();
    let e = judging.finish(200, 1).unwrap();
    assert_eq!(
        (e.images, e.prompts, e.skipped_images, e.skipped_prompts),
        (4, 4, 2, 1)
    );
    let verdict: HashMap<&str, f64> = e
        .verdicts
        .iter()
        .map(|v| (v.prompt_id.as_str(), v.score.unwrap()))
        .collect();
    assert_eq!(
        verdict,
        HashMap::from([("right", 1.0), ("wrong", 0.0), ("both", 1.0), ("half", 0.0)])
    );
    let half: Value = serde_json::from_str(e.verdicts[3].details.as_deref().unwrap()).unwrap();
    assert_eq!(
        half["reason"],
        format!("cube: {won} (wanted {lost}); sphere: {sphere}")
    );
    assert_eq!(
        half["colour_scores"]["sphere"].as_array().unwrap().len(),
        10
    );
    // Each task scores 1 of 2; overall is the mean of the two tasks.
    let names: Vec<&str> = e.categories.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["color_attr", "colors"]);
    assert!(e.categories.iter().all(|c| c.score == 0.5));
    assert_eq!(e.overall, 0.5);
    let judge = judge_label(&clip, ClipTask::GenevalColor);
    assert!(
        judge.starts_with("substitute: CLIP") && judge.contains("no detector"),
        "{judge}"
    );
    assert!(report(&e, &judge).contains("1 prompts (2 images) of other tasks skipped"));

    // Only other tasks: nothing to judge, said so.
    let pos = prompt(
        "pos",
        "p",
        "position",
        Some(r#"{"tag": "position", "include": []}"#),
    );
    let mut judging = Judging::new(&clip, ClipTask::GenevalColor, vec![pos]).unwrap();
    judging.push(vec![sample(0, "pos", IMAGES[0])], 2).unwrap();
    let err = judging.finish(10, 1).err().unwrap().to_string();
    assert!(err.contains("none of the 1 images"), "{err}");
}

#[test]
fn colour_records_and_verdicts() {
    assert!(color::Record::of(RED_CUBE).unwrap().is_some());
    assert!(
        color::Record::of(r#"{"tag": "counting", "include": []}"#)
            .unwrap()
            .is_none()
    );
    let e = color::Record::of(&color_record("colors", &[("cube", "teal")])).unwrap_err();
    assert!(e.contains("`teal`"), "{e}");
    let clip = clip();
    let no_record = prompt("p", "p", "colors", None);
    let e = Judging::new(&clip, ClipTask::GenevalColor, vec![no_record])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("prompt `p`: no GenEval metadata record"), "{e}");
    // Ties go to the first colour, as argmax.
    assert_eq!(color::predicted(&[0.1, 0.3, 0.3, 0.0]), "orange");
}

#[test]
fn the_weights_folder_is_part_of_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = pipeline::Store::open(&tmp.path().join("store")).unwrap();
    let files = store.file_hasher().unwrap();
    let folder = tmp.path().join("clip");
    std::fs::create_dir(&folder).unwrap();
    for f in FILES {
        std::fs::copy(tiny_dir().join(f), folder.join(f)).unwrap();
    }
    let config = ClipJudgeConfig {
        weights: "clip".into(),
        task: ClipTask::T2iClipscore,
        batch_size: 4,
        bootstrap_rounds: 10,
        seed: 0,
    };
    let before = ClipJudge::externals(&config, &files, tmp.path()).unwrap();
    assert_eq!(before.len(), 3);
    assert_eq!(before[2].0, "clip clip/model.safetensors");
    let config_json = folder.join("config.json");
    let text = std::fs::read_to_string(&config_json).unwrap();
    std::fs::write(&config_json, text.replace("2.6592", "2.6593")).unwrap();
    let after = ClipJudge::externals(&config, &files, tmp.path()).unwrap();
    assert_ne!(before[0].1, after[0].1);
    assert_eq!(before[1..], after[1..]);
    std::fs::remove_file(folder.join("tokenizer.json")).unwrap();
    let e = ClipJudge::externals(&config, &files, tmp.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
}
