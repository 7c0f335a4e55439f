//! `rationale.caption`: each image goes to the VLM as a `data:` URL and comes back as
//! the row's detailed caption, with the source's caption as `brief_caption` and the
//! provenance of the request; a row whose bytes are no image fails at once, unsent.

mod llm_support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use llm::mock::{MockServer, Script};
use llm_support::{Project, endpoint};

/// The PNG signature and some bytes: enough for the type to be recognised.
fn fake_png(len: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.resize(len, 7);
    b
}

#[test]
fn images_become_detailed_captions() {
    let server = MockServer::start(Script::default()).unwrap();
    let p = Project::new();
    let rows: String = (0..5)
        .map(|i| {
            let bytes = if i == 3 {
                b"GIF? no, plain text".to_vec()
            } else {
                fake_png(100 + i)
            };
            serde_json::json!({"id": format!("img-{i}"), "image": STANDARD.encode(bytes), "caption": format!("photo {i}")})
                .to_string()
                + "\n"
        })
        .collect();
    p.write("images.jsonl", &rows);
    let recipe = format!(
        r#"
[recipe]
name = "captions"

[nodes.images]
kind = "source.table"
config = {{ path = "images.jsonl", schema = "source_image", constants = {{ source = "test" }} }}

[nodes.caption]
kind = "rationale.caption"
inputs = {{ images = "images" }}

[nodes.caption.config]
{}
policy = {{ allow_failures = 0.5 }}
"#,
        endpoint(&server.url())
    );
    let run = p.run(&recipe, &[]);
    let out = run.output("caption");
    assert_eq!(out.len(), 4, "{}", run.log());
    for r in &out {
        let i: usize = r.id["img-".len()..].parse().unwrap();
        // The mock saw the image: it counts the bytes of the data URL it decoded.
        assert!(
            r.detailed_caption
                .contains(&format!("[image of {} bytes]", 100 + i)),
            "{}",
            r.detailed_caption
        );
        assert_eq!(
            r.brief_caption.as_deref(),
            Some(format!("photo {i}").as_str())
        );
        let prov = &r.provenance[0];
        assert_eq!(
            (
                prov.task.as_str(),
                prov.model.as_str(),
                prov.template.as_str(),
                prov.template_version
            ),
            ("caption", "mock-model", "caption", 1)
        );
    }
    let failures = run.failures("caption");
    assert_eq!(failures.len(), 1);
    assert_eq!(
        (failures[0].id.as_str(), failures[0].reason.as_str()),
        ("img-3", "bad_input")
    );
    assert_eq!(failures[0].attempts, 0);
    assert_eq!(server.counts().chat, 4, "the bad row is never sent");
}
