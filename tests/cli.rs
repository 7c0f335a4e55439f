//! The command line end to end: the demo, plan, status, show, stages, schema, init, and
//! errors.

mod common;

use common::{Project, repo};

fn demo() -> String {
    repo("recipes/demo.toml").display().to_string()
}

#[test]
fn the_demo_runs_then_is_entirely_fresh() {
    let p = Project::new();
    let first = p.run(&["run", &demo()]).ok();
    assert!(
        first.text().contains("succeeded: 7 ran, 0 fresh"),
        "{}",
        first.text()
    );
    let second = p.run(&["run", &demo()]).ok();
    assert!(
        second.text().contains("succeeded: 0 ran, 7 fresh"),
        "{}",
        second.text()
    );
    let plan = p.run(&["plan", &demo()]).ok();
    assert!(plan.stdout.contains("7 fresh, 0 stale"), "{}", plan.stdout);

    let status = p.run(&["status"]).ok();
    assert!(status.stdout.contains("recipe `demo`"), "{}", status.stdout);
    assert_eq!(
        status.stdout.matches(" fresh ").count(),
        7,
        "{}",
        status.stdout
    );

    let show = p.run(&["show", "bundle"]).ok();
    for expected in [
        "kind      files",
        "SHA256SUMS",
        "command v1 as node `bundle`",
        "table.filter v1 (node `counting`)",
        "source.prompts v1 (node `geneval`)",
        "← file data/geneval/evaluation_metadata.jsonl",
    ] {
        assert!(
            show.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            show.stdout
        );
    }
}

#[test]
fn plan_explains_a_set_override_and_json_is_machine_readable() {
    let p = Project::new();
    p.run(&["run", &demo()]).ok();
    let plan = p
        .run(&["plan", &demo(), "--set", "dev_sample.sample=0.3"])
        .ok();
    assert!(
        plan.stdout
            .contains("config key `sample` changed: 0.2 → 0.3"),
        "{}",
        plan.stdout
    );
    let json = p
        .run(&[
            "plan",
            &demo(),
            "--json",
            "--set",
            "counting.where=tag = 'colors'",
        ])
        .ok();
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let state = |node: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["node"] == node)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("counting"), "stale");
    assert_eq!(state("bundle"), "pending");
    assert_eq!(state("position"), "fresh");
    // The override really runs, and only what it touches re-runs.
    let run = p
        .run(&["run", &demo(), "--set", "counting.where=tag = 'colors'"])
        .ok();
    assert!(run.text().contains("2 ran, 5 fresh"), "{}", run.text());
}

#[test]
fn recipe_errors_name_file_line_node_and_key_and_exit_2() {
    let p = Project::new();
    p.write(
        "bad.toml",
        "[nodes.src]\nkind = \"table.import\"\nconfig = { path = \"x.csv\" }\n\n[nodes.f]\nkind = \"table.filter\"\ninputs = { input = \"src\" }\nconfig = { wher = \"a > 1\" }\n",
    );
    let r = p.run(&["run", "bad.toml"]);
    assert_eq!(r.code, Some(2), "{}", r.text());
    assert!(
        r.stderr
            .contains("bad.toml:8:12: node `f`, key `config.wher`: unknown field `wher`"),
        "{}",
        r.stderr
    );
    assert!(
        !p.store().join("runs").exists()
            || p.store_files().is_empty()
            || !r.stderr.contains("started")
    );
    let r = p.run(&["run", "bad.toml", "--target", "nope"]);
    assert_eq!(r.code, Some(2));
}

#[test]
fn editing_a_source_file_reruns_only_what_reads_it() {
    let p = Project::new();
    p.write("data.csv", "id,score\n1,0.5\n2,0.9\n3,0.1\n");
    p.write("other.csv", "id\n7\n");
    p.write(
        "r.toml",
        r#"
[nodes.data]
kind = "table.import"
config = { path = "data.csv" }
[nodes.high]
kind = "table.filter"
inputs = { input = "data" }
config = { where = "score > 0.4" }
[nodes.other]
kind = "table.import"
config = { path = "other.csv" }
"#,
    );
    p.run(&["run", "r.toml"]).ok();
    p.write("data.csv", "id,score\n1,0.5\n2,0.9\n3,0.7\n");
    let plan = p.run(&["plan", "r.toml"]).ok();
    assert!(
        plan.stdout.contains("external `file data.csv` changed"),
        "{}",
        plan.stdout
    );
    let r = p.run(&["run", "r.toml"]).ok();
    assert!(r.text().contains("2 ran, 1 fresh"), "{}", r.text());
    assert!(
        r.text().contains("high: done") && r.text().contains("3 rows"),
        "{}",
        r.text()
    );
}

#[test]
fn a_failing_node_fails_the_run_and_is_named() {
    let p = Project::new();
    p.write(
        "r.toml",
        r#"
[nodes.bad]
kind = "command"
config = { argv = ["sh", "-c", "echo something broke >&2; exit 3"] }
[nodes.after]
kind = "command"
inputs = { x = "bad" }
config = { argv = ["sh", "-c", "ls {input.x}"] }
[nodes.good]
kind = "command"
config = { argv = ["sh", "-c", "echo fine > {out}/ok.txt"] }
"#,
    );
    let r = p.run(&["run", "r.toml"]);
    assert_eq!(r.code, Some(1), "{}", r.text());
    assert!(
        r.stderr
            .contains("failed node `bad`: sh exited with exit status: 3"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("something broke"), "{}", r.stderr);
    assert!(
        r.stderr.contains("after: skipped (upstream `bad` failed)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("1 ran, 0 fresh, 1 failed, 1 skipped"),
        "{}",
        r.stderr
    );
}

#[test]
fn stages_are_documented_from_their_typed_configs() {
    let p = Project::new();
    let out = p.run(&["stages"]).ok().stdout;
    for expected in [
        "table.filter v1",
        "table.import v1",
        "command v1",
        // Doc comments of config fields, types and defaults come from the config types.
        "A SQL condition over the columns",
        "default \"files\"",
        "one of csv|jsonl|parquet",
        "input          table (one): the table to filter",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["stages", "--json"]).ok().stdout).unwrap();
    let kinds: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    for k in [
        "command",
        "table.filter",
        "table.import",
        "release.export",
        "source.prompts",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let r = p.run(&["stages", "nope"]);
    assert_eq!(r.code, Some(2));
}

#[test]
fn schema_describes_every_kind_and_its_config() {
    let p = Project::new();
    let schema: serde_json::Value = serde_json::from_str(&p.run(&["schema"]).ok().stdout).unwrap();
    let branches = schema["properties"]["nodes"]["additionalProperties"]["allOf"]
        .as_array()
        .unwrap();
    let kinds: Vec<&str> = branches
        .iter()
        .map(|b| b["if"]["properties"]["kind"]["const"].as_str().unwrap())
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(kinds, sorted, "one branch per kind, in order");
    let filter_at = kinds.iter().position(|k| *k == "table.filter").unwrap();
    let filter = &branches[filter_at]["then"]["properties"]["config"];
    assert_eq!(filter["additionalProperties"], false);
    assert!(filter["properties"]["where"].is_object());
    // References into definitions are rewritten per kind and all resolve.
    let text = schema.to_string();
    for r in text.split("\"$ref\":\"#/$defs/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(schema["$defs"].get(name).is_some(), "dangling $ref {name}");
    }
}

#[test]
fn init_writes_a_recipe_that_runs() {
    let p = Project::new();
    p.run(&["init"]).ok();
    assert!(p.path("recipe.toml").exists());
    let again = p.run(&["init"]);
    assert_eq!(again.code, Some(2), "init never overwrites");
    let r = p.run(&["run", "recipe.toml"]).ok();
    assert!(r.text().contains("3 ran"), "{}", r.text());
}
