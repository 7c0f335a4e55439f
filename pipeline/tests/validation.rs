//! Every recipe error names the file, the line, the node and the key.

mod support;

use pipeline::recipe::{Diagnostic, Override, Recipe, apply_all, validate};
use std::path::Path;

fn errors(src: &str) -> Vec<Diagnostic> {
    let recipe = match Recipe::parse(Path::new("recipes/bad.toml"), src.to_string()) {
        Ok(r) => r,
        Err(e) => return e.diagnostics,
    };
    match validate(recipe, &support::registry()) {
        Ok(_) => panic!("expected the recipe to be rejected"),
        Err(e) => e.diagnostics,
    }
}

fn one(src: &str) -> Diagnostic {
    let d = errors(src);
    assert_eq!(d.len(), 1, "{d:#?}");
    let d = d.into_iter().next().unwrap();
    assert_eq!(d.file, Path::new("recipes/bad.toml"));
    d
}

#[test]
fn unknown_stage_kind_with_a_suggestion() {
    let d = one("[nodes.a]\nkind = \"test.sourse\"\nconfig = { text = \"x\" }\n");
    assert_eq!(d.node.as_deref(), Some("a"));
    assert_eq!(d.key.as_deref(), Some("kind"));
    assert_eq!(d.position, Some((2, 1)));
    assert!(
        d.message.contains("unknown stage kind `test.sourse`"),
        "{d}"
    );
    assert!(d.message.contains("did you mean `test.source`"), "{d}");
    assert!(
        d.to_string()
            .starts_with("recipes/bad.toml:2:1: node `a`, key `kind`:"),
        "{d}"
    );
}

#[test]
fn unknown_config_key_is_located() {
    let d = one(
        "[nodes.a]\nkind = \"test.source\"\n\n[nodes.a.config]\ntext = \"x\"\ntimes = 2\ntexts = \"y\"\n",
    );
    assert_eq!(d.node.as_deref(), Some("a"));
    assert_eq!(d.key.as_deref(), Some("config.texts"));
    assert_eq!(d.position, Some((7, 1)));
    assert!(d.message.contains("unknown field `texts`"), "{d}");
}

#[test]
fn mistyped_config_value_is_located() {
    let d = one("[nodes.a]\nkind = \"test.source\"\nconfig = { text = \"x\", times = \"two\" }\n");
    assert_eq!(d.key.as_deref(), Some("config.times"));
    assert_eq!(d.position.map(|p| p.0), Some(3));
    assert!(d.message.contains("invalid type: string \"two\""), "{d}");
}

#[test]
fn missing_required_config_key() {
    let d = one("[nodes.a]\nkind = \"test.source\"\nconfig = { times = 2 }\n");
    assert_eq!(d.node.as_deref(), Some("a"));
    assert!(d.message.contains("missing field `text`"), "{d}");
}

#[test]
fn missing_input_binding_and_missing_input_node() {
    let d = one("[nodes.u]\nkind = \"test.upper\"\n");
    assert_eq!(d.key.as_deref(), Some("inputs.text"));
    assert!(d.message.contains("missing input `text`"), "{d}");

    let d = one("[nodes.u]\nkind = \"test.upper\"\ninputs = { text = \"nowhere\" }\n");
    assert_eq!(d.node.as_deref(), Some("u"));
    assert_eq!(d.key.as_deref(), Some("inputs.text"));
    assert_eq!(d.position, Some((3, 12)));
    assert!(d.message.contains("no node `nowhere`"), "{d}");
}

#[test]
fn unknown_input_name() {
    let d = one(
        "[nodes.s]\nkind = \"test.source\"\nconfig = { text = \"x\" }\n[nodes.u]\nkind = \"test.upper\"\ninputs = { text = \"s\", extra = \"s\" }\n",
    );
    assert_eq!(d.key.as_deref(), Some("inputs.extra"));
    assert!(d.message.contains("unknown input `extra`"), "{d}");
}

#[test]
fn input_of_the_wrong_artifact_kind() {
    let d = one(
        "[nodes.t]\nkind = \"test.table\"\n[nodes.u]\nkind = \"test.upper\"\ninputs = { text = \"t\" }\n",
    );
    assert_eq!(d.node.as_deref(), Some("u"));
    assert_eq!(d.key.as_deref(), Some("inputs.text"));
    assert!(
        d.message
            .contains("takes files but node `t` (test.table) writes table"),
        "{d}"
    );
}

#[test]
fn duplicate_node_id() {
    let d = one(
        "[nodes.a]\nkind = \"test.source\"\nconfig = { text = \"x\" }\n\n[nodes.a]\nkind = \"test.table\"\n",
    );
    assert_eq!(d.node.as_deref(), Some("a"));
    assert_eq!(d.position.map(|p| p.0), Some(5));
    assert!(d.message.contains("duplicate node id"), "{d}");
}

#[test]
fn cycle_is_printed() {
    let d = one(
        "[nodes.a]\nkind = \"test.upper\"\ninputs = { text = \"c\" }\n[nodes.b]\nkind = \"test.upper\"\ninputs = { text = \"a\" }\n[nodes.c]\nkind = \"test.upper\"\ninputs = { text = \"b\" }\n",
    );
    assert!(d.message.starts_with("cycle: "), "{d}");
    // Every hop of the printed cycle is a real edge, and it closes.
    let hops: Vec<&str> = d.message["cycle: ".len()..].split(" → ").collect();
    assert_eq!(hops.len(), 4, "{d}");
    assert_eq!(hops.first(), hops.last());
    let edges = [("c", "a"), ("a", "b"), ("b", "c")];
    for w in hops.windows(2) {
        assert!(edges.contains(&(w[0], w[1])), "{d}");
    }
}

#[test]
fn unknown_node_and_top_level_keys() {
    let d = one("[nodes.a]\nkind = \"test.table\"\nconfg = {}\n");
    assert_eq!(d.key.as_deref(), Some("confg"));
    assert_eq!(d.position, Some((3, 1)));
    let d = one("[recipe]\nname = \"r\"\nsed = 3\n[nodes.a]\nkind = \"test.table\"\n");
    assert_eq!(d.key.as_deref(), Some("recipe.sed"));
}

#[test]
fn all_problems_are_reported_together() {
    let d = errors(
        "[nodes.a]\nkind = \"nope\"\n[nodes.b]\nkind = \"test.source\"\nconfig = { text = 1 }\n[nodes.c]\nkind = \"test.upper\"\n",
    );
    let nodes: Vec<_> = d.iter().filter_map(|d| d.node.clone()).collect();
    assert_eq!(nodes, vec!["a", "b", "c"], "{d:#?}");
}

#[test]
fn set_overrides_are_checked_like_the_file() {
    let src = "[nodes.a]\nkind = \"test.source\"\nconfig = { text = \"x\" }\n";
    let mut recipe = Recipe::parse(Path::new("r.toml"), src.into()).unwrap();
    apply_all(&mut recipe, &[Override::parse("a.times=3").unwrap()]).unwrap();
    let g = validate(recipe, &support::registry()).unwrap();
    assert_eq!(g.nodes[0].prepared.canonical_config()["times"], 3);

    let mut recipe = Recipe::parse(Path::new("r.toml"), src.into()).unwrap();
    apply_all(&mut recipe, &[Override::parse("a.tims=3").unwrap()]).unwrap();
    let e = validate(recipe, &support::registry()).err().unwrap();
    assert!(e.to_string().contains("unknown field `tims`"), "{e}");

    let mut recipe = Recipe::parse(Path::new("r.toml"), src.into()).unwrap();
    let e = apply_all(&mut recipe, &[Override::parse("b.times=3").unwrap()]).unwrap_err();
    assert!(e.to_string().contains("--set b.times=3: no node"), "{e}");
}

#[test]
fn included_recipes_bring_their_nodes_seeds_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.toml"),
        "[recipe]\nname = \"base\"\nseed = 9\n\n[nodes.a]\nkind = \"test.source\"\nconfig = { text = \"x\" }\n",
    )
    .unwrap();
    let outer = dir.path().join("outer.toml");
    let parse = |src: &str| {
        std::fs::write(&outer, src).unwrap();
        Recipe::load(&outer)
    };
    let recipe = parse(
        "[recipe]\nname = \"outer\"\ninclude = \"base.toml\"\n\n[nodes.b]\nkind = \"test.source\"\nconfig = { text = \"y\" }\n",
    )
    .unwrap();
    let ids: Vec<&str> = recipe.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(
        recipe.node("a").unwrap().seed,
        Some(9),
        "its own recipe's seed"
    );
    assert_eq!(recipe.node("b").unwrap().seed, None);
    let graph = validate(recipe, &support::registry()).unwrap();
    assert_eq!(graph.nodes.len(), 2);

    let twice = parse(
        "[recipe]\ninclude = [\"base.toml\"]\n[nodes.a]\nkind = \"test.source\"\nconfig = { text = \"y\" }\n",
    )
    .unwrap_err();
    assert!(
        twice.diagnostics[0]
            .message
            .contains("already defined by an included recipe"),
        "{twice}"
    );
    // A mistake in the included recipe points into its file.
    std::fs::write(
        dir.path().join("base.toml"),
        "[nodes.a]\nkind = \"test.source\"\nconfig = { text = \"x\", texts = 1 }\n",
    )
    .unwrap();
    let recipe = parse("[recipe]\ninclude = \"base.toml\"\n").unwrap();
    let Err(e) = validate(recipe, &support::registry()) else {
        panic!("the included node's mistake is found")
    };
    let d = &e.diagnostics[0];
    assert!(
        d.file.ends_with("base.toml") && d.position.map(|p| p.0) == Some(3),
        "{d}"
    );
}
