//! `reasongen --store s3://…` end to end, on a moto server on loopback (see
//! `pipeline/tests/s3/moto.rs`): part of the shapes recipe runs against the bucket and
//! gives the same artifact digests as on a local store; a second machine (another
//! cache) finds it all fresh; `verify` and `gc` work on the bucket; the secret key
//! appears in no output and no file of the cache. Two controllers running the same
//! recipe at once on one bucket compute each node once and leave it clean.

mod common;
#[path = "../pipeline/tests/s3/moto.rs"]
mod moto;

use common::{Project, Run, repo, walk};
use std::collections::BTreeMap;

const SECRET: &str = "not-a-real-secret-7f3a9c";

const PART: &[&str] = &[
    "--set",
    "scenes.count=40",
    "--set",
    "rl_prompts.per_task=5",
    "--set",
    "eval_prompts.per_task=5",
    "--target",
    "scenes",
    "--target",
    "rl_prompts",
    "--target",
    "eval_prompts",
];

/// `reasongen --store <store>` with the cache `cache`, in the project folder.
fn reasongen(p: &Project, store: &str, cache: &str, args: &[&str]) -> Run {
    let output = p
        .cmd_on(store.as_ref(), args)
        .env("REASONGEN_CACHE", p.path(cache))
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .output()
        .unwrap();
    Run::from(output)
}

fn refs(store: &pipeline::Store) -> BTreeMap<String, pipeline::Digest> {
    store
        .refs()
        .unwrap()
        .into_iter()
        .map(|(_, node, r)| (node, r.digest))
        .collect()
}

#[test]
fn part_of_the_shapes_recipe_on_s3_matches_the_local_store() {
    let Some(m) = moto::moto() else { return };
    let p = Project::new();
    let recipe = repo("recipes/shapes.toml").display().to_string();
    let mut run_args = vec!["run", recipe.as_str()];
    run_args.extend_from_slice(PART);
    let url = format!("s3://{}/team", m.bucket("shapes"));

    let local = p.run(&run_args).ok();
    assert!(
        local.text().contains("succeeded: 3 ran"),
        "{}",
        local.text()
    );
    let first = reasongen(&p, &url, "cache-one", &run_args).ok();
    assert!(
        first.text().contains("succeeded: 3 ran"),
        "{}",
        first.text()
    );
    let second = reasongen(&p, &url, "cache-two", &run_args).ok();
    assert!(
        second.text().contains("0 ran, 3 fresh"),
        "{}",
        second.text()
    );

    let here = refs(&pipeline::Store::open(&p.store()).unwrap());
    let options = pipeline::store::StoreOptions {
        cache: Some(p.path("cache-test")),
        ..Default::default()
    };
    let on_s3 = refs(&pipeline::Store::open_with(url.as_ref(), options).unwrap());
    assert_eq!(here.len(), 3);
    assert_eq!(on_s3, here, "the same artifacts, by digest");

    let verify = reasongen(&p, &url, "cache-two", &["verify"]).ok();
    assert!(verify.stdout.contains("0 problems"), "{}", verify.text());
    let gc = reasongen(&p, &url, "cache-two", &["gc"]).ok();
    assert!(
        !gc.stdout.contains("would remove artifact"),
        "{}",
        gc.text()
    );

    for out in [&first, &second, &verify, &gc] {
        assert!(!out.text().contains(SECRET));
    }
    for cache in ["cache-one", "cache-two"] {
        let mut files = Vec::new();
        walk(&p.path(cache), &mut files);
        assert!(!files.is_empty());
        for (path, text) in files {
            assert!(!text.contains(SECRET), "{}", path.display());
        }
    }
}

#[test]
fn two_controllers_at_once_on_one_bucket_leave_it_clean() {
    let Some(m) = moto::moto() else { return };
    let p = Project::new();
    let recipe = repo("recipes/shapes.toml").display().to_string();
    let mut run_args = vec!["run", recipe.as_str()];
    run_args.extend_from_slice(PART);
    let url = format!("s3://{}/team", m.bucket("two"));
    let controllers: Vec<_> = ["cache-a", "cache-b"]
        .map(|cache| {
            p.cmd_on(url.as_ref(), &run_args)
                .env("REASONGEN_CACHE", p.path(cache))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .into_iter()
        .collect();
    // Each node is computed once: the other controller waits on its lease and finds it.
    let mut ran = 0;
    for c in controllers {
        let out = Run::from(c.wait_with_output().unwrap()).ok();
        let text = out.text();
        let count = text
            .split_once("succeeded: ")
            .and_then(|(_, rest)| rest.split_once(" ran")?.0.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no summary:\n{text}"));
        ran += count;
    }
    assert_eq!(
        ran, 3,
        "the three nodes ran once between the two controllers"
    );
    let verify = reasongen(&p, &url, "cache-c", &["verify"]).ok();
    assert!(verify.stdout.contains(" 0 problems"), "{}", verify.text());
    let again = reasongen(&p, &url, "cache-c", &run_args).ok();
    assert!(again.text().contains("0 ran, 3 fresh"), "{}", again.text());
}
