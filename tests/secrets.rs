//! A secret in the environment never reaches the store, the events, the logs or the
//! console, even when a program prints it.

mod common;

use common::Project;

const SECRET: &str = "sk-planted-7f3a9c2e1b8d4f60";

#[test]
fn a_planted_api_key_appears_nowhere() {
    let p = Project::new();
    p.write(
        "r.toml",
        r#"
[nodes.leaky]
kind = "command"
config = { argv = ["sh", "-c", "echo \"using $OPENAI_API_KEY\"; echo \"denied for $OPENAI_API_KEY\" >&2; exit 1"], pass_env = ["OPENAI_API_KEY"] }

[nodes.fine]
kind = "command"
config = { argv = ["sh", "-c", "echo \"key length ${#OPENAI_API_KEY}\" > {out}/len.txt"], pass_env = ["OPENAI_API_KEY"] }
"#,
    );
    let run = p
        .cmd(&["run", "r.toml"])
        .env("OPENAI_API_KEY", SECRET)
        .output()
        .unwrap();
    let run = common::Run::from(run);
    assert_eq!(run.code, Some(1));
    // The program did see the key (its length is right), and the failure is reported...
    assert!(run.stderr.contains("denied for ***"), "{}", run.stderr);
    let files = p.store_files();
    assert!(
        files
            .iter()
            .any(|(_, t)| t.contains(&format!("key length {}", SECRET.len()))),
        "the program received the key"
    );
    // ...but the key itself is nowhere.
    assert!(!run.text().contains(SECRET), "console: {}", run.text());
    for (path, text) in &files {
        assert!(
            !text.contains(SECRET),
            "{} holds the secret",
            path.display()
        );
    }
    assert!(
        files.iter().any(|(path, _)| path.ends_with("leaky.stderr")),
        "the logs exist (redacted)"
    );
    let status = p.run(&["status"]).ok();
    assert!(!status.text().contains(SECRET));
}
