//! `release.export` as a node and `reasongen export` from the command line.

mod common;

use common::Project;
use std::collections::BTreeMap;
use std::path::Path;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn project() -> Project {
    let p = Project::new();
    let rows: String = (0..40)
        .map(|i| {
            format!(
                "{{\"id\": \"p{i:03}\", \"prompt\": \"prompt number {i}\", \"score\": {}}}\n",
                i % 7
            )
        })
        .collect();
    p.write("prompts.jsonl", &rows);
    p.write(
        "r.toml",
        r#"
[recipe]
name = "rel"

[nodes.prompts]
kind = "table.import"
config = { path = "prompts.jsonl" }

[nodes.release]
kind = "release.export"
inputs = { table = "prompts" }
config = { license = "mit", name = "Prompt list", splits = { train = 0.75, test = 0.25 }, seed = 3 }
"#,
    );
    p
}

#[test]
fn a_release_node_and_the_export_command_agree() {
    let p = project();
    p.run(&["run", "r.toml"]).ok();
    p.run(&["export", "release", "--out", "copied"]).ok();
    let copied = files(&p.path("copied"));
    assert!(
        copied
            .keys()
            .any(|k| k.starts_with("data/train-00000-of-00001")),
        "{:?}",
        copied.keys()
    );
    let readme = String::from_utf8(copied["README.md"].clone()).unwrap();
    assert!(
        readme.contains("license: mit") && readme.contains("# Prompt list"),
        "{readme}"
    );
    assert!(readme.contains("recipe `rel`, node `release`"), "{readme}");

    // The same table exported from the command line with the same options: the same
    // rows in the same splits.
    let out = p
        .run(&[
            "export",
            "prompts",
            "--out",
            "direct",
            "--license",
            "mit",
            "--split",
            "train=0.75",
            "--split",
            "test=0.25",
            "--seed",
            "3",
            "--name",
            "Prompt list",
        ])
        .ok();
    assert!(out.stdout.contains("rows in"), "{}", out.stdout);
    let direct = files(&p.path("direct"));
    for (path, bytes) in &copied {
        if path.ends_with(".parquet") {
            assert_eq!(Some(bytes), direct.get(path), "{path} differs");
        }
    }
    // Exporting twice gives identical bytes.
    p.run(&[
        "export",
        "prompts",
        "--out",
        "again",
        "--license",
        "mit",
        "--split",
        "train=0.75",
        "--split",
        "test=0.25",
        "--seed",
        "3",
        "--name",
        "Prompt list",
    ])
    .ok();
    assert_eq!(files(&p.path("again")), direct);
}

#[test]
fn export_refuses_what_it_cannot_do() {
    let p = project();
    p.run(&["run", "r.toml"]).ok();
    let r = p.run(&["export", "prompts", "--out", "x"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--license is required"), "{}", r.stderr);
    let r = p.run(&["export", "release", "--out", "y", "--license", "mit"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("already a release"), "{}", r.stderr);
    let r = p.run(&["export", "nope", "--out", "z"]);
    assert_eq!(r.code, Some(2));
    std::fs::create_dir_all(p.path("busy")).unwrap();
    std::fs::write(p.path("busy/x"), "").unwrap();
    let r = p.run(&["export", "release", "--out", "busy"]);
    assert!(r.stderr.contains("must be empty"), "{}", r.stderr);
}

#[test]
fn bad_split_config_is_a_recipe_error() {
    let p = project();
    let text = std::fs::read_to_string(p.path("r.toml"))
        .unwrap()
        .replace("test = 0.25", "test = 0.5");
    p.write("r.toml", &text);
    let r = p.run(&["plan", "r.toml"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("node `release`") && r.stderr.contains("sum to 1.25"),
        "{}",
        r.stderr
    );
}
