//! `model.import`: a user's Janus-Pro folder enters the store by content digest without
//! a second copy of its weights. A 7 GiB folder leaves the disk use as it was; every
//! layout (single or sharded `.bin`, single or sharded safetensors, DeepSeek's or
//! transformers' keys) loads from the store and draws what the folder draws; the same
//! bytes anywhere give the same digest; a held file changed or gone is named by
//! `verify` and refused before use; `gc` never touches the user's files.

mod janus_support;

use janus_support::fixtures;
use pipeline::console::{Console, ConsoleMode};
use pipeline::events::EventSink;
use pipeline::executor::{Capacity, Outcome, RunOptions};
use pipeline::recipe::{Recipe, validate};
use pipeline::store::{GcOptions, HeldAs};
use pipeline::{
    Arity, ArtifactKind, ArtifactType, Digest, InputSpec, Output, OutputDecl, Registry, Stage,
    StageContext, StageError, Store,
};
use std::collections::HashSet;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Reads {
    /// A number that makes a new run key when a test needs the node to run again.
    #[serde(default)]
    pass: u32,
}

/// A node that reads a model artifact (the engine checks its held files first).
struct ReadsModel;

impl Stage for ReadsModel {
    type Config = Reads;
    const KIND: &'static str = "test.reads_model";
    const VERSION: u32 = 1;
    const DOC: &'static str = "counts a model's files";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "model",
        kinds: &[ArtifactKind::Model],
        schema: None,
        arity: Arity::One,
        doc: "the model",
    }];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Report));

    async fn run(&self, _: Reads, ctx: StageContext) -> Result<Output, StageError> {
        let model = ctx.input("model")?;
        Ok(Output {
            meta: serde_json::json!({"files": model.files().count()}),
            ..Output::default()
        })
    }
}

/// Run `nodes` (TOML of `[nodes.*]` tables) as the recipe `name` on `store`.
fn run(store: &Store, dir: &Path, name: &str, nodes: &str) -> Vec<(String, Outcome)> {
    let mut registry = Registry::new();
    train::stages::register(&mut registry);
    registry.register(ReadsModel);
    let text = format!("[recipe]\nname = \"{name}\"\n{nodes}");
    let graph = validate(
        Recipe::parse(&dir.join(format!("{name}.toml")), text).unwrap(),
        &registry,
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(pipeline::executor::run(
        Arc::new(graph),
        store.clone(),
        pipeline::executor::new_run_id(),
        RunOptions {
            capacity: Capacity {
                threads: 2,
                gpus: 0,
                llm_slots: 1,
            },
            targets: vec![],
            force: Default::default(),
            budget_usd: None,
        },
        EventSink::to_file(&dir.join(format!("{name}.events.jsonl")), vec![]).unwrap(),
        Console::new(ConsoleMode::Quiet),
        CancellationToken::new(),
    ))
    .unwrap()
    .outcomes
}

/// The recipe nodes importing `path`, held as `hold`, and reading it.
fn import(path: &Path, hold: &str) -> String {
    format!(
        "[nodes.model]\nkind = \"model.import\"\nconfig = {{ path = \"{}\", hold = \"{hold}\" }}\n\
         [nodes.reader]\nkind = \"test.reads_model\"\ninputs = {{ model = \"model\" }}\n",
        path.display()
    )
}

/// The digest the node `node` ended with; panics with the outcome otherwise.
fn digest(outcomes: &[(String, Outcome)], node: &str) -> Digest {
    match outcomes.iter().find(|(n, _)| n == node).map(|(_, o)| o) {
        Some(Outcome::Ran { digest, .. } | Outcome::Cached { digest }) => *digest,
        other => panic!("{node}: {other:?}"),
    }
}

fn error<'a>(outcomes: &'a [(String, Outcome)], node: &str) -> &'a str {
    match outcomes.iter().find(|(n, _)| n == node).map(|(_, o)| o) {
        Some(Outcome::Failed { error }) => error,
        other => panic!("{node} should have failed: {other:?}"),
    }
}

/// Bytes allocated on disk under `roots`, each inode counted once (a hard link is the
/// same blocks under two names).
fn allocated(roots: &[&Path]) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack: Vec<_> = roots.iter().map(|p| p.to_path_buf()).collect();
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() * 512;
        }
    }
    total
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// A user's folder: a fixture's weights and config with the fixtures' tokenizer.
fn user_folder(fixture: &str, to: &Path) {
    copy_folder(&fixtures().join(fixture), to);
    if !to.join("tokenizer.json").exists() {
        std::fs::copy(fixtures().join("tokenizer.json"), to.join("tokenizer.json")).unwrap();
    }
}

/// Make a file look an hour old, so the stat cache keeps its digest.
fn age(path: &Path) {
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
}

const SEVEN_GIB: u64 = 7 << 30;
/// Real (non-hole) bytes in the dummy weights: a copy would allocate at least these.
const WRITTEN: u64 = 16 << 20;

/// `model.safetensors` of one BF16 tensor of 7 GiB: a valid header, then a sparse body
/// with 16 MiB of real bytes spread through it.
fn seven_gib_safetensors(path: &Path) {
    let shape = [SEVEN_GIB / 2 / 4096, 4096];
    let mut header = serde_json::to_vec(&serde_json::json!({
        "language_model.model.embed_tokens.weight":
            {"dtype": "BF16", "shape": shape, "data_offsets": [0, SEVEN_GIB]}
    }))
    .unwrap();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&header).unwrap();
    let body = 8 + header.len() as u64;
    f.set_len(body + SEVEN_GIB).unwrap();
    let chunk = vec![0x3fu8; 1 << 20];
    for i in 0..WRITTEN / chunk.len() as u64 {
        f.seek(SeekFrom::Start(body + i * (SEVEN_GIB / 16)))
            .unwrap();
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
fn a_seven_gib_folder_is_held_not_copied() {
    let work = tempfile::tempdir().unwrap();
    let (folder, store_dir) = (work.path().join("Janus-Pro-7B"), work.path().join("store"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        fixtures().join("original/config.json"),
        folder.join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("tokenizer.json"),
        folder.join("tokenizer.json"),
    )
    .unwrap();
    let weights = folder.join("model.safetensors");
    seven_gib_safetensors(&weights);
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        age(&folder.join(f));
    }
    let store = Store::open(&store_dir).unwrap();
    let before = allocated(&[&folder, &store_dir]);
    assert!(before >= WRITTEN, "the dummy holds real bytes: {before}");

    let started = std::time::Instant::now();
    let first = run(&store, work.path(), "one", &import(&folder, "link"));
    let linked = digest(&first, "model");
    digest(&first, "reader");
    let hashed_once = started.elapsed();
    let after = allocated(&[&folder, &store_dir]);
    let grown = after.saturating_sub(before);
    println!(
        "7 GiB folder: {:.1} MiB allocated before, {:.1} MiB after (+{:.2} MiB) in {:.1} s",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        grown as f64 / 1048576.0,
        hashed_once.as_secs_f64()
    );
    assert!(grown < WRITTEN / 4, "the store grew by {grown} bytes");

    let manifest = store.manifest(&linked).unwrap();
    let entry = manifest
        .content
        .files
        .iter()
        .find(|f| f.path == "model.safetensors")
        .unwrap();
    assert!(entry.size > SEVEN_GIB);
    assert_eq!(manifest.held.len(), 1);
    assert_eq!(manifest.held[0].held_as, HeldAs::Link);
    let (user, held) = (
        std::fs::metadata(&weights).unwrap(),
        std::fs::metadata(store.object_dir(&linked).join("model.safetensors")).unwrap(),
    );
    assert_eq!(
        user.ino(),
        held.ino(),
        "the store's file is the user's inode"
    );
    assert!(
        !user.permissions().readonly(),
        "the user's file keeps its permissions"
    );

    // Again, held by reference this time: the same digest, nothing new on disk, and
    // no second read of the 7 GiB (the stat cache knew it, link and all).
    let started = std::time::Instant::now();
    let second = run(&store, work.path(), "two", &import(&folder, "reference"));
    println!(
        "imported again by reference in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(digest(&second, "model"), linked);
    assert!(allocated(&[&folder, &store_dir]) < before + WRITTEN / 4);

    // Nothing model-sized went through the item memo.
    let memo = allocated(&[&store_dir.join("memo")]);
    assert!(memo < 1 << 20, "the memo holds {memo} bytes");
}

/// The folder's six forms: `bin` (one `pytorch_model.bin`), `sharded` (`.bin` shards
/// and their index), `original` and `hf` (one safetensors file in each key layout),
/// and `sharded_safetensors` (what `reasongen convert` makes of the shards).
fn folders(root: &Path) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut out = Vec::new();
    for fixture in ["bin", "sharded", "original", "hf"] {
        let dir = root.join(fixture);
        user_folder(fixture, &dir);
        out.push((fixture, dir));
    }
    let converted = root.join("sharded_safetensors");
    train::janus::convert::convert(&root.join("sharded"), &converted, 600_000).unwrap();
    std::fs::copy(
        fixtures().join("tokenizer.json"),
        converted.join("tokenizer.json"),
    )
    .unwrap();
    assert!(converted.join("model.safetensors.index.json").exists());
    out.push(("sharded_safetensors", converted));
    out
}

#[test]
fn every_layout_enters_the_store_and_loads_as_the_folder_does() {
    use train::janus::load::{DeviceChoice, load};
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    for (name, dir) in folders(&work.path().join("users")) {
        let outcomes = run(&store, work.path(), name, &import(&dir, "link"));
        let d = digest(&outcomes, "model");
        let manifest = store.manifest(&d).unwrap();
        let layout = if name == "hf" {
            "transformers"
        } else {
            "original"
        };
        assert_eq!(manifest.content.meta["layout"], layout, "{name}");
        let weights: Vec<&str> = manifest.held.iter().map(|h| h.path.as_str()).collect();
        let expected: Vec<String> = train::janus::checkpoint::weight_files(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(weights, expected, "{name}: every weight file held");
        assert!(manifest.held.iter().all(|h| h.held_as == HeldAs::Link));
        let object = store.object_dir(&d);
        for small in ["config.json", "tokenizer.json"] {
            let meta = std::fs::metadata(object.join(small)).unwrap();
            assert_eq!(meta.nlink(), 1, "{name}: {small} is copied");
        }
        load(&object, &DeviceChoice::Cpu.open().unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));

        // The same bytes elsewhere, held by reference: the same artifact.
        let elsewhere = work.path().join("elsewhere").join(name);
        copy_folder(&dir, &elsewhere);
        let again = run(&store, work.path(), name, &import(&elsewhere, "reference"));
        assert_eq!(
            digest(&again, "model"),
            d,
            "{name}: the digest is the bytes'"
        );
    }
    assert!(store.verify().unwrap().problems.is_empty());
}

/// What `model.generate`'s work draws from the model folder `model`: its rows.
fn draw(model: &Path, work: &Path) -> Vec<schemas::eval_sample::EvalSample> {
    use datasets::table::{ShardOptions, ShardWriter, TableReader};
    use schemas::Row;
    use schemas::rl_prompt::RlPrompt;
    use train::janus::draw::GenerateConfig;
    use train::janus::load::DeviceChoice;
    use train::stages::generate::{Job, ModelInput, write_generations};
    let (table, out) = (work.join("prompts"), work.join("out"));
    for d in [&table, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    let rows = [RlPrompt {
        id: "p0".into(),
        prompt: "a red cube".into(),
        family: "shapes".into(),
        tag: None,
        metadata: None,
    }];
    let mut writer = ShardWriter::new(
        &table,
        Arc::new(RlPrompt::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    writer.write(&schemas::to_batch(&rows).unwrap()).unwrap();
    writer.finish().unwrap();
    let config = GenerateConfig {
        samples: 2,
        max_rationale_tokens: 4,
        device: DeviceChoice::Cpu,
        ..GenerateConfig::default()
    };
    let digest = Digest::of_bytes(b"the model");
    let job = Job {
        prompts: &table,
        model: ModelInput {
            dir: model,
            digest: &digest,
        },
        tokenizer: None,
        seed: 5,
        out_dir: &out,
    };
    write_generations(&config, job, None, &()).unwrap();
    TableReader::open(&out)
        .unwrap()
        .rows::<schemas::eval_sample::EvalSample>()
        .unwrap()
        .flat_map(Result::unwrap)
        .collect()
}

#[test]
fn a_model_from_the_store_draws_what_the_users_folder_draws() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    // DeepSeek's original release form: `.bin` shards with their index.
    let folder = work.path().join("Janus-Pro");
    user_folder("sharded", &folder);
    let d = digest(
        &run(&store, work.path(), "r", &import(&folder, "link")),
        "model",
    );
    let from_store = draw(&store.object_dir(&d), &work.path().join("a"));
    let from_folder = draw(&folder, &work.path().join("b"));
    assert_eq!(from_store.len(), 2);
    assert!(from_store.iter().all(|r| r.image.bytes.is_some()));
    assert_eq!(from_store, from_folder);
}

#[test]
fn a_hard_linked_file_changed_in_place_is_found_by_verify() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let folder = work.path().join("model");
    user_folder("original", &folder);
    let weights = folder.join("model.safetensors");
    let first = digest(
        &run(&store, work.path(), "r", &import(&folder, "link")),
        "model",
    );
    assert!(store.verify().unwrap().problems.is_empty());

    // A program writes into the file in place (same size): the store's name sees it.
    let mut f = std::fs::File::options().write(true).open(&weights).unwrap();
    f.seek(SeekFrom::End(-4)).unwrap();
    f.write_all(&[1, 2, 3, 4]).unwrap();
    drop(f);
    let problems = store.verify().unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    let text = problems[0].to_string();
    for part in [
        first.to_hex().as_str(),
        "model.safetensors: sha256",
        "a hard link shared with",
        "run the recipe again",
    ] {
        assert!(text.contains(part), "`{part}` in: {text}");
    }
    // The next run brings the changed folder in as a new artifact.
    let outcomes = run(&store, work.path(), "r", &import(&folder, "link"));
    assert_ne!(digest(&outcomes, "model"), first);
    digest(&outcomes, "reader");
}

#[test]
fn a_reference_gone_is_refused_before_use_and_a_new_import_takes_its_place() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let (a, b, c) = (
        work.path().join("a"),
        work.path().join("b"),
        work.path().join("c"),
    );
    for dir in [&a, &b, &c] {
        user_folder("original", dir);
    }
    let held = digest(
        &run(&store, work.path(), "ra", &import(&a, "reference")),
        "model",
    );
    // `b` holds the same bytes: its import is the same artifact, a reference to `a`.
    let outcomes = run(&store, work.path(), "rb", &import(&b, "reference"));
    assert_eq!(digest(&outcomes, "model"), held);
    std::fs::remove_file(a.join("model.safetensors")).unwrap();

    // `b`'s import is unchanged (cached), but what it points to is gone: a node that
    // reads it now is refused before it runs.
    let again = "[nodes.again]\nkind = \"test.reads_model\"\nconfig = { pass = 2 }\ninputs = { model = \"model\" }\n";
    let outcomes = run(
        &store,
        work.path(),
        "rb",
        &format!("{}{again}", import(&b, "reference")),
    );
    assert!(matches!(outcomes[0].1, Outcome::Cached { .. }));
    let e = error(&outcomes, "again");
    for part in [
        "input `model` (model)",
        "model.safetensors",
        "a reference to",
        "/a/model.safetensors is gone",
        "run the recipe again",
    ] {
        assert!(e.contains(part), "`{part}` in: {e}");
    }
    let problems = store.verify().unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].to_string().contains("a reference to"));

    // Importing `c` replaces the stale artifact (same digest), and `b`'s reader works.
    let outcomes = run(&store, work.path(), "rc", &import(&c, "reference"));
    assert_eq!(digest(&outcomes, "model"), held);
    let source = &store.manifest(&held).unwrap().held[0].source;
    assert!(
        source.starts_with(std::fs::canonicalize(&c).unwrap()),
        "{source:?}"
    );
    let outcomes = run(
        &store,
        work.path(),
        "rb",
        &format!("{}{again}", import(&b, "reference")),
    );
    digest(&outcomes, "again");
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn gc_removes_the_artifact_and_leaves_the_users_files() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let folder = work.path().join("model");
    user_folder("sharded", &folder);
    let before: Vec<(String, Vec<u8>)> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    let d = digest(
        &run(&store, work.path(), "r", &import(&folder, "link")),
        "model",
    );
    let weights = store.manifest(&d).unwrap().content.total_bytes();
    for node in ["model", "reader"] {
        store.remove_ref("r", node).unwrap();
    }
    let report = store
        .gc(GcOptions {
            delete: true,
            refs_only: true,
        })
        .unwrap();
    assert!(report.objects.iter().any(|(o, _)| *o == d));
    assert!(!store.has_object(&d));
    let freed: u64 = report.objects.iter().map(|(_, b)| b).sum();
    assert!(
        freed < weights / 10,
        "gc counts {freed} bytes freed; the held weights stay with the user"
    );
    for (path, bytes) in before {
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{path}");
    }
}
