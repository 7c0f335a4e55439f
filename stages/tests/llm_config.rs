//! Config mistakes are errors before anything runs, naming the node and the key.

mod llm_support;

use llm_support::{plan_recipe, registry};
use pipeline::recipe::{Recipe, validate};
use std::path::Path;

fn error(config: &str) -> String {
    let recipe = Recipe::parse(Path::new("/tmp/r.toml"), plan_recipe(config, "")).unwrap();
    match validate(recipe, &registry()) {
        Ok(_) => panic!("accepted: {config}"),
        Err(e) => e.to_string(),
    }
}

const ENDPOINT: &str = r#"endpoint = { base_url = "http://127.0.0.1:9/v1", model = "m" }"#;

#[test]
fn mistakes_are_caught_before_running() {
    let cases = [
        (
            format!("{ENDPOINT}\ntemplate = {{ user = \"Draw {{prompt}}\" }}"),
            "give `version`",
        ),
        (
            format!("{ENDPOINT}\ntemplate = {{ version = 2, user = \"Draw {{promt}}\" }}"),
            "unknown placeholder `{promt}`; this task fills {id}, {prompt}, {family}, {tag}",
        ),
        (
            format!("{ENDPOINT}\nstructured = \"json_object\""),
            "`structured` applies to tasks with JSON answers only",
        ),
        (
            format!("{ENDPOINT}\nbudget_usd = 5.0"),
            "budget_usd needs the price of `m`",
        ),
        (
            format!(
                "{ENDPOINT}\nbudget_usd = 5.0\nprices = {{ m = {{ input_per_mtok = 1.0, output_per_mtok = 1.0 }} }}"
            ),
            "budget_usd needs a bound on each answer's length to bound its cost: set sampling.max_tokens",
        ),
        (
            format!("{ENDPOINT}\npolicy = {{ allow_failures = 1.5 }}"),
            "give a fraction in [0, 1]",
        ),
        (
            format!("{ENDPOINT}\nsampling = {{ extra = {{ messages = [] }} }}"),
            "sampling.extra.messages",
        ),
        (
            r#"endpoint = { base_url = "localhost:8000", model = "m" }"#.to_string(),
            "is not an http(s) URL",
        ),
        (
            format!("{ENDPOINT}\nlimits = {{ concurency = 4 }}"),
            "concurency",
        ),
    ];
    for (config, want) in cases {
        let e = error(&config);
        assert!(e.contains(want), "{config}\n→ {e}");
        assert!(e.contains("plan"), "the message names the node: {e}");
    }
}
