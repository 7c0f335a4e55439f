//! Acceptance of the shapes judge, per GenEval task, on 200 scenes built from their own
//! records: accuracy on clean renders (≥ 99%), on renders degraded by blur σ 0.8 px,
//! noise σ 8/255 and JPEG quality 60 (≥ 95%), and the rate at which an image passes a
//! near-miss record of the same task whose truth differs (≤ 2%). Each test prints its
//! figures (`cargo test -p datasets --test shapes_judge -- --nocapture`).

use datasets::shapes::perturb::Degradation;
use datasets::shapes::{
    Detection, Judge, Metadata, SceneGenerator, Summary, Task, all_prompts, render,
};

const CASES: usize = 200;

fn percent(n: usize) -> f64 {
    100.0 * n as f64 / CASES as f64
}

fn run(task: Task) {
    let judge = Judge::default();
    let prompts = all_prompts(task);
    // Walk the task's prompts with a stride coprime to their number, so that every
    // prompt is used (color_attr has more prompts than cases: a spread sample).
    let stride = (1..)
        .map(|k| 7919 * k)
        .find(|s| gcd(*s, prompts.len()) == 1)
        .unwrap_or(1);
    let records: Vec<&Metadata> = (0..CASES)
        .map(|i| &prompts[(i * stride) % prompts.len()])
        .collect();
    let (mut clean_results, mut degraded_results) = (Vec::new(), Vec::new());
    let (mut clean_false, mut degraded_false, mut mismatches) = (0, 0, 0);
    let (mut clean_min, mut degraded_min) = (f64::INFINITY, f64::INFINITY);
    for (i, &record) in records.iter().enumerate() {
        let seed = 1000 * task as u64 + i as u64;
        let scene = SceneGenerator::new(seed)
            .for_metadata(record)
            .unwrap_or_else(|e| panic!("{}: {e}", record.prompt));
        let clean = render(&scene, 64);
        let degraded = Degradation {
            seed,
            ..Degradation::default()
        }
        .apply(&clean)
        .expect("degrade");
        let (clean_found, degraded_found) = (judge.detect(&clean), judge.detect(&degraded));
        let least = |found: &[Detection]| {
            found
                .iter()
                .map(|d| d.confidence)
                .fold(f64::INFINITY, f64::min)
        };
        clean_min = clean_min.min(least(&clean_found));
        degraded_min = degraded_min.min(least(&degraded_found));
        let verdict =
            |found, record| datasets::shapes::judge::evaluate(found, record, &judge.options);
        let (c, d) = (
            verdict(&clean_found, record),
            verdict(&degraded_found, record),
        );
        if !c.correct || !d.correct {
            println!(
                "{}: clean {:?} degraded {:?}",
                record.prompt, c.reason, d.reason
            );
        }
        clean_results.push((record, c.correct));
        degraded_results.push((record, d.correct));
        // A near miss: a record of the task whose truth this scene does not meet and
        // that names as many of the same classes as any (the same shapes in another
        // relation, in other or swapped colors, in another count).
        let shared = |other: &Metadata| {
            let classes = |m: &Metadata| m.include.iter().map(|inc| inc.class).collect::<Vec<_>>();
            let mine = classes(record);
            classes(other).iter().filter(|c| mine.contains(c)).count()
        };
        let misses: Vec<&Metadata> = prompts
            .iter()
            .filter(|other| !scene.satisfies(other, 64).correct)
            .collect();
        let best = misses.iter().map(|m| shared(m)).max().unwrap_or(0);
        let near: Vec<&Metadata> = misses.into_iter().filter(|m| shared(m) == best).collect();
        let other = near[i % near.len()];
        mismatches += 1;
        clean_false += usize::from(verdict(&clean_found, other).correct);
        degraded_false += usize::from(verdict(&degraded_found, other).correct);
    }
    let clean = Summary::new(clean_results);
    let degraded = Summary::new(degraded_results);
    let (c, d) = (clean.correct_images, degraded.correct_images);
    println!(
        "{:<13} clean {c}/{CASES} = {:.2}% | degraded {d}/{CASES} = {:.2}% | mismatched pairs passed: clean {clean_false}/{mismatches} = {:.2}%, degraded {degraded_false}/{mismatches} = {:.2}% | distinct prompts {} | least confidence: clean {clean_min:.2}, degraded {degraded_min:.2}",
        task.tag(),
        percent(c),
        percent(d),
        percent(clean_false),
        percent(degraded_false),
        clean.prompts,
    );
    println!("clean renders:\n{clean}\ndegraded renders:\n{degraded}");
    assert!(percent(c) >= 99.0, "{}: clean {c}/{CASES}", task.tag());
    assert!(percent(d) >= 95.0, "{}: degraded {d}/{CASES}", task.tag());
    assert!(
        percent(clean_false) <= 2.0,
        "{}: clean mismatches {clean_false}",
        task.tag()
    );
    assert!(
        percent(degraded_false) <= 2.0,
        "{}: degraded mismatches {degraded_false}",
        task.tag()
    );
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[test]
fn judge_single_object() {
    run(Task::SingleObject);
}

#[test]
fn judge_two_object() {
    run(Task::TwoObject);
}

#[test]
fn judge_counting() {
    run(Task::Counting);
}

#[test]
fn judge_colors() {
    run(Task::Colors);
}

#[test]
fn judge_position() {
    run(Task::Position);
}

#[test]
fn judge_color_attr() {
    run(Task::ColorAttr);
}
