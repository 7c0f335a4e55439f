//! The store on S3 (a moto server on loopback, see `s3/moto.rs`): object_store's own
//! conformance functions against that server; then the store's behaviour, each test
//! body run against a local store and an S3 store alike (publish, lookup from a second
//! machine's cache, refs, memo, leases, racing controllers, verify and gc); a killed
//! upload; and a recipe giving the same digests on both.

#[path = "s3/moto.rs"]
mod moto;
mod support;

use moto::moto;
use object_store::aws::{AmazonS3Builder, S3CopyIfNotExists};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use pipeline::artifact::{ArtifactKind, Lineage};
use pipeline::key::{ENGINE_KEY_VERSION, KeyInputs};
use pipeline::stage::Output;
use pipeline::store::{GcOptions, KeyRecord, NodeLock, Problem, Ref, StoreOptions};
use pipeline::{Digest, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::run;

const RECIPE: &str = r#"
[nodes.a]
kind = "test.source"
config = { text = "alpha" }
[nodes.u]
kind = "test.upper"
inputs = { text = "a" }
[nodes.b]
kind = "test.source"
config = { text = "beta", times = 3 }
"#;

/// One backend under test: a local folder, or a bucket with one cache per "machine".
struct Backend {
    /// `local` or `s3`.
    name: &'static str,
    /// The folder, or `s3://bucket/store`.
    location: PathBuf,
    bucket: Option<String>,
    dir: tempfile::TempDir,
}

impl Backend {
    /// The store as seen from `machine` (its own cache on S3; the one folder locally),
    /// with no grace period, so that fresh leftovers count as stale.
    fn open(&self, machine: &str) -> Store {
        let options = StoreOptions {
            cache: Some(self.dir.path().join(format!("cache-{machine}"))),
            grace: Duration::ZERO,
            ..StoreOptions::default()
        };
        Store::open_with(&self.location, options).unwrap()
    }

    fn s3(&self) -> Option<Box<dyn ObjectStore>> {
        let bucket = self.bucket.as_ref()?;
        Some(Box::new(
            AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .unwrap(),
        ))
    }

    /// Overwrite file `rel` of artifact `digest`, behind the store's back.
    fn tamper(&self, store: &Store, digest: &Digest, rel: &str, bytes: &[u8]) {
        match self.s3() {
            Some(s3) => block(async move {
                let path = format!("store/objects/{}/{rel}", digest.to_hex());
                s3.put(&path.into(), PayloadOf(bytes.to_vec()).into())
                    .await
                    .unwrap();
            }),
            None => {
                let file = store.object_dir(digest).join(rel);
                let mut perms = std::fs::metadata(&file).unwrap().permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perms.set_readonly(false);
                std::fs::set_permissions(&file, perms).unwrap();
                std::fs::write(&file, bytes).unwrap();
            }
        }
    }

    /// Leave what a killed writer leaves: a run folder without its lock, or an
    /// artifact's file uploaded without its manifest.
    fn plant_stale_tmp(&self, store: &Store) {
        match self.s3() {
            Some(s3) => block(async move {
                let path = format!(
                    "store/objects/{}/half.bin",
                    Digest::of_bytes(b"never finished").to_hex()
                );
                s3.put(&path.into(), PayloadOf(vec![7; 100]).into())
                    .await
                    .unwrap();
            }),
            None => {
                let dir = store.root().join("tmp").join("killed-run");
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("half.bin"), [7; 100]).unwrap();
            }
        }
    }

    /// Write the lease of `run_key` at generation 1, as a holder with `expires_ms`.
    fn plant_lease(&self, store: &Store, run_key: &Digest, expires_ms: u64) {
        // A holder on another host, which only its expiry can free.
        let body =
            format!(r#"{{"host":"elsewhere","pid":1,"started":0,"expires_ms":{expires_ms}}}"#)
                .into_bytes();
        match self.s3() {
            Some(s3) => block(async move {
                let path = format!("store/locks/{}/gen-1", run_key.to_hex());
                s3.put(&path.into(), PayloadOf(body).into()).await.unwrap();
            }),
            None => {
                let dir = store.root().join("locks").join(run_key.to_hex());
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("gen-1"), body).unwrap();
            }
        }
    }
}

struct PayloadOf(Vec<u8>);

impl From<PayloadOf> for PutPayload {
    fn from(p: PayloadOf) -> PutPayload {
        PutPayload::from(p.0)
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A local backend, and an S3 one when moto is there.
fn backends() -> Vec<Backend> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    out.push(Backend {
        name: "local",
        location: dir.path().join("store"),
        bucket: None,
        dir,
    });
    if let Some(m) = moto() {
        let bucket = m.bucket("store");
        out.push(Backend {
            name: "s3",
            location: PathBuf::from(format!("s3://{bucket}/store")),
            bucket: Some(bucket),
            dir: tempfile::tempdir().unwrap(),
        });
    }
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn lineage(node: &str, salt: &str) -> Lineage {
    let key = KeyInputs {
        engine: ENGINE_KEY_VERSION,
        stage: "test.source".into(),
        stage_version: 1,
        config: serde_json::json!({ "salt": salt }),
        inputs: BTreeMap::new(),
        externals: BTreeMap::new(),
        seed: None,
    };
    Lineage {
        run_key: key.run_key(),
        key,
        recipe: "test".into(),
        node: node.into(),
        run_id: "r".into(),
        started_ms: 0,
        duration_ms: 0,
        counters: BTreeMap::new(),
    }
}

/// Publish a folder holding `files` (with no key and no ref).
fn publish(store: &Store, node: &str, salt: &str, files: &[(&str, &[u8])]) -> Digest {
    let dir = store.root().join("tmp").join(format!(
        "out-{node}-{}",
        Digest::of_bytes(salt.as_bytes()).short()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    store
        .publish(
            &dir,
            ArtifactKind::Files,
            &Output::default(),
            lineage(node, salt),
            &[],
        )
        .unwrap()
        .digest
}

fn refs_by_node(store: &Store) -> BTreeMap<String, Digest> {
    store
        .refs()
        .unwrap()
        .into_iter()
        .map(|(_, node, r)| (node, r.digest))
        .collect()
}

#[test]
fn object_store_conformance_against_moto() {
    let Some(m) = moto() else { return };
    let bucket = m.bucket("conformance");
    let s3 = AmazonS3Builder::from_env()
        .with_bucket_name(&bucket)
        .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
        .build()
        .unwrap();
    use object_store::integration::*;
    block(async {
        put_get_delete_list(&s3).await;
        put_opts(&s3, true).await;
        get_opts(&s3).await;
        list_uses_directories_correctly(&s3).await;
        list_with_delimiter(&s3).await;
        rename_and_copy(&s3).await;
        copy_if_not_exists(&s3).await;
        stream_get(&s3).await;
        multipart(&s3, &s3).await;
    });
}

#[test]
fn a_second_machine_finds_artifacts_refs_and_memo_records_of_the_first() {
    moto();
    for b in backends() {
        let first = b.open("one");
        let ran = run(&first, RECIPE);
        assert_eq!(ran.ran_nodes().len(), 3, "{}", b.name);
        let digests = refs_by_node(&first);
        assert_eq!(digests.len(), 3, "{}", b.name);

        let second = b.open("two");
        assert!(run(&second, RECIPE).ran_nodes().is_empty(), "{}", b.name);
        assert_eq!(refs_by_node(&second), digests, "{}", b.name);
        for d in digests.values() {
            assert!(second.has_object(d), "{}", b.name);
            let manifest = second.manifest(d).unwrap();
            for f in &manifest.content.files {
                let (sha, size) = Digest::of_file(&second.object_dir(d).join(&f.path)).unwrap();
                assert_eq!((sha, size), (f.sha256, f.size), "{}: {}", b.name, f.path);
            }
        }
        assert_eq!(
            std::fs::read_to_string(second.object_dir(&digests["u"]).join("data.txt")).unwrap(),
            "ALPHA",
            "{}",
            b.name
        );

        // A file over the single-PUT limit goes up in parts and comes back whole.
        let big: Vec<u8> = (0..33 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let d = publish(&first, "big", "big", &[("big.bin", &big)]);
        let other = b.open("four");
        assert!(other.has_object(&d), "{}", b.name);
        other.manifest(&d).unwrap();
        let (sha, size) = Digest::of_file(&other.object_dir(&d).join("big.bin")).unwrap();
        assert_eq!((sha, size), (Digest::of_bytes(&big), big.len() as u64));

        // The memo: many records, read by the other machine.
        let memo = first.memo("llm").unwrap();
        let keys: Vec<Digest> = (0..600u32)
            .map(|i| Digest::of_bytes(&i.to_le_bytes()))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            memo.put(k, format!("answer {i}").as_bytes()).unwrap();
        }
        first.flush().unwrap();
        let third = b.open("three");
        let seen = third.memo("llm").unwrap();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                seen.get(k).unwrap().as_deref(),
                Some(format!("answer {i}").as_bytes()),
                "{}",
                b.name
            );
        }
        assert_eq!(third.memo("other").unwrap().get(&keys[0]).unwrap(), None);
        if let Some(s3) = b.s3() {
            let segments = block(async move {
                use futures_util::TryStreamExt;
                s3.list(Some(&"store/memo/llm".into()))
                    .try_collect::<Vec<_>>()
                    .await
                    .unwrap()
            });
            assert!(
                (1..=3).contains(&segments.len()),
                "600 records in a few segments, not one object each: {}",
                segments.len()
            );
        }
    }
}

#[test]
fn racing_controllers_leave_one_key_one_ref_and_a_clean_store() {
    moto();
    for b in backends() {
        let (one, two) = (b.open("one"), b.open("two"));
        // Both publish the same content, and different content for the same run key.
        let same = [("data.txt", &b"same bytes"[..])];
        let (da, db) = std::thread::scope(|s| {
            let a = s.spawn(|| publish(&one, "n", "same-a", &same));
            let c = s.spawn(|| publish(&two, "n", "same-b", &same));
            (a.join().unwrap(), c.join().unwrap())
        });
        assert_eq!(da, db, "{}: one content, one identity", b.name);
        let x = publish(&one, "n", "x", &[("data.txt", b"from one")]);
        let y = publish(&two, "n", "y", &[("data.txt", b"from two")]);
        let run_key = Digest::of_bytes(b"the contested key");
        let record = |digest| {
            let mut lineage = lineage("n", "race");
            lineage.run_key = run_key;
            KeyRecord { digest, lineage }
        };
        let (got_one, got_two) = std::thread::scope(|s| {
            let a = s.spawn(|| one.put_key(&record(x)).unwrap());
            let c = s.spawn(|| two.put_key(&record(y)).unwrap());
            (a.join().unwrap(), c.join().unwrap())
        });
        let stored = one.key(&run_key).unwrap().unwrap().digest;
        assert!(stored == x || stored == y, "{}", b.name);
        assert_eq!(two.key(&run_key).unwrap().unwrap().digest, stored);
        if b.name == "s3" {
            // Put-if-absent: exactly one winner, and the loser is told the winner.
            assert_eq!((got_one.digest, got_two.digest), (stored, stored));
        }

        // Both move one ref, 20 times each, interleaved in time.
        std::thread::scope(|s| {
            for (store, digest, parity) in [(&one, x, 0u64), (&two, y, 1)] {
                s.spawn(move || {
                    for i in 0..20u64 {
                        let r = Ref {
                            run_key,
                            digest,
                            updated_ms: 2 * i + parity,
                            run_id: format!("run-{parity}-{i}"),
                        };
                        store.put_ref("test", "n", &r).unwrap();
                    }
                });
            }
        });
        let last = one.get_ref("test", "n").unwrap().unwrap();
        assert!(last.digest == x || last.digest == y, "{}", b.name);
        if b.name == "s3" {
            // Compare-and-swap: the latest run's ref stands, none is lost to a race.
            assert_eq!((last.updated_ms, last.digest), (39, y));
        }
        let report = two.verify().unwrap();
        assert!(
            report.problems.is_empty(),
            "{}: {:?}",
            b.name,
            report.problems
        );
        assert_eq!(report.objects, 3, "{}", b.name);
    }
}

#[test]
fn a_node_lease_is_held_until_released_and_taken_over_only_when_expired() {
    moto();
    for b in backends() {
        let (one, two) = (b.open("one"), b.open("two"));
        let key = Digest::of_bytes(b"node");
        let held = NodeLock::try_acquire(&one, &key).unwrap().unwrap();
        assert!(
            NodeLock::try_acquire(&two, &key).unwrap().is_none(),
            "{}",
            b.name
        );
        drop(held);
        let next = NodeLock::try_acquire(&two, &key).unwrap();
        assert!(next.is_some(), "{}: released", b.name);
        drop(next);

        // A holder that died: live until its expiry, then taken over.
        let live = Digest::of_bytes(b"live");
        b.plant_lease(&one, &live, now_ms() + 60_000);
        assert!(
            NodeLock::try_acquire(&two, &live).unwrap().is_none(),
            "{}",
            b.name
        );
        let dead = Digest::of_bytes(b"dead");
        b.plant_lease(&one, &dead, now_ms() - 1);
        let stolen = NodeLock::try_acquire(&two, &dead).unwrap();
        assert!(stolen.is_some(), "{}: expired, so taken over", b.name);
        assert!(
            NodeLock::try_acquire(&one, &dead).unwrap().is_none(),
            "{}",
            b.name
        );
    }
}

#[test]
fn verify_and_gc_find_and_remove_damage() {
    moto();
    for b in backends() {
        let store = b.open("one");
        run(&store, RECIPE);
        let digests = refs_by_node(&store);
        let orphan = publish(&store, "orphan", "o", &[("x.bin", &[1u8; 64][..])]);
        assert!(store.verify().unwrap().problems.is_empty(), "{}", b.name);

        b.tamper(&store, &digests["b"], "data.txt", b"not what was published");
        let missing = Digest::of_bytes(b"gone");
        let mut dangling = lineage("d", "dangling");
        dangling.run_key = Digest::of_bytes(b"dangling key");
        store
            .put_key(&KeyRecord {
                digest: missing,
                lineage: dangling.clone(),
            })
            .unwrap();
        b.plant_stale_tmp(&store);

        let problems = store.verify().unwrap().problems;
        let name = b.name;
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::CorruptObject { digest, file: Some(f), .. }
                    if *digest == digests["b"] && f == "data.txt")),
            "{name}: {problems:?}"
        );
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::DanglingKey { run_key, digest }
                    if *run_key == dangling.run_key && *digest == missing)),
            "{name}: {problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| matches!(p, Problem::StaleTmp { .. })),
            "{name}: {problems:?}"
        );
        assert_eq!(problems.len(), 3, "{name}: {problems:?}");

        let dry = store
            .gc(GcOptions {
                delete: false,
                refs_only: false,
            })
            .unwrap();
        assert_eq!(
            dry.objects.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
            vec![orphan],
            "{name}"
        );
        assert!(
            store.has_object(&orphan),
            "{name}: a dry run deletes nothing"
        );
        let report = store
            .gc(GcOptions {
                delete: true,
                refs_only: false,
            })
            .unwrap();
        assert_eq!(report.objects.len(), 1, "{name}");
        assert!(!report.tmp.is_empty(), "{name}");
        assert!(!store.has_object(&orphan), "{name}");
        for d in digests.values() {
            assert!(store.has_object(d), "{name}: reachable artifacts stay");
        }
        let after = store.verify().unwrap().problems;
        assert!(
            !after.iter().any(|p| matches!(p, Problem::StaleTmp { .. })),
            "{name}: {after:?}"
        );
    }
}

/// Run by `a_killed_upload_leaves_nothing_published` in a child process, which the
/// fault point aborts mid-upload.
#[test]
#[ignore = "run as a child process by a_killed_upload_leaves_nothing_published"]
fn child_uploads_until_killed() {
    let (Ok(url), Ok(cache)) = (
        std::env::var("REASONGEN_TEST_STORE"),
        std::env::var("REASONGEN_TEST_CACHE"),
    ) else {
        return;
    };
    moto();
    let options = StoreOptions {
        cache: Some(cache.into()),
        ..StoreOptions::default()
    };
    let store = Store::open_with(Path::new(&url), options).unwrap();
    publish(&store, "victim", "v", &KILLED_FILES);
    unreachable!("the fault point aborts the upload");
}

const KILLED_FILES: [(&str, &[u8]); 2] = [("a.bin", &[1; 1000]), ("b.bin", &[2; 1000])];

#[test]
fn a_killed_upload_leaves_nothing_published() {
    let Some(m) = moto() else { return };
    let b = backends().pop().unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_uploads_until_killed",
            "--nocapture",
        ])
        .env("REASONGEN_TEST_STORE", &b.location)
        .env("REASONGEN_TEST_CACHE", b.dir.path().join("cache-child"))
        .env("REASONGEN_S3_ENDPOINT", &m.endpoint)
        .env("REASONGEN_FAULT", "publish.upload")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(!child.status.success(), "{stderr}");
    assert!(
        stderr.contains("fault injected at publish.upload"),
        "{stderr}"
    );

    let store = b.open("after");
    assert!(store.objects().unwrap().is_empty(), "nothing published");
    let problems = store.verify().unwrap().problems;
    assert!(
        matches!(&problems[..], [Problem::StaleTmp { at }] if at.contains("1 files, no manifest")),
        "{problems:?}"
    );
    // Publishing again completes it; gc has nothing left to collect.
    let digest = publish(&store, "victim", "v", &KILLED_FILES);
    assert!(store.has_object(&digest));
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn a_recipe_gives_the_same_digests_on_s3_as_locally() {
    let Some(_) = moto() else { return };
    let mut backends = backends();
    let s3 = backends.pop().unwrap();
    let local = backends.pop().unwrap();
    let (on_s3, here) = (s3.open("one"), local.open("one"));
    run(&on_s3, RECIPE);
    run(&here, RECIPE);
    let digests = refs_by_node(&here);
    assert_eq!(refs_by_node(&on_s3), digests);
    for d in digests.values() {
        assert!(on_s3.has_object(d));
    }
}
