//! `command`: run an external program as a node.
//!
//! The program gets a cleared environment (only `env`, the names in `pass_env`, and
//! `PATH`), runs in the recipe's folder, and writes its output into `{out}`. The run
//! key covers argv, `env`, the names in `pass_env` (not their values: use them for
//! secrets), the content of the program file and of every path in `deps`. Standard
//! output and error go to the run's log folder; on failure the last lines of standard
//! error are in the message.
//!
//! Placeholders in argv: `{out}`, `{scratch}`, `{recipe_dir}` and `{input.NAME}` (the
//! folder of the artifact bound to input NAME). Other braces are left alone.

use datasets::table::TableReader;
use pipeline::store::FileHasher;
use pipeline::{
    Arity, ArtifactKind, Bindings, Digest, InputSpec, Output, OutputDecl, Resources, ResultExt,
    Stage, StageContext, StageError,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Config of `command`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments (no shell: use `["sh", "-c", "..."]` for one).
    pub argv: Vec<String>,
    /// Environment variables set for the program; part of the run key.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment variables passed through from reasongen's own environment. Only
    /// their names are part of the key, so secrets can pass without entering it.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// Files and folders the program reads, relative to the recipe; their content is
    /// part of the key.
    #[serde(default)]
    pub deps: Vec<String>,
    /// Kind of artifact the program writes into `{out}` (`files`, `table`, `report`, ...).
    /// A `table` must be Parquet shards named `part-*.parquet`.
    #[serde(default = "default_output")]
    pub output: ArtifactKind,
    /// Seconds before the program is killed; 0 for no limit.
    #[serde(default)]
    pub timeout_secs: u64,
    /// Threads the program uses (the executor reserves them).
    #[serde(default = "one")]
    pub threads: u32,
}

fn default_output() -> ArtifactKind {
    ArtifactKind::Files
}

fn one() -> u32 {
    1
}

pub struct Command;

/// Every `{input.NAME}` in argv.
fn referenced_inputs(argv: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for arg in argv {
        let mut rest = arg.as_str();
        while let Some(start) = rest.find("{input.") {
            let after = &rest[start + 7..];
            match after.find('}') {
                Some(end) => {
                    out.push(after[..end].to_string());
                    rest = &after[end + 1..];
                }
                None => break,
            }
        }
    }
    out
}

/// The program file argv[0] names: a path (relative to the recipe) or a PATH lookup.
fn resolve_program(program: &str, recipe_dir: &Path) -> Result<PathBuf, StageError> {
    if program.contains('/') {
        let p = pipeline::context::resolve_against(recipe_dir, program);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(StageError::msg(format!(
                "program `{}` not found",
                p.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| StageError::msg(format!("program `{program}` not found on PATH")))
}

fn substitute(arg: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = arg.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a program that claims to write a table wrote: shards of one schema.
fn table_output(dir: &Path) -> Result<Output, StageError> {
    let reader = TableReader::open(dir)?;
    if reader.files().is_empty() {
        return Err(StageError::msg(
            "output = \"table\" but the program wrote no part-*.parquet files",
        ));
    }
    let schema = reader.arrow_schema()?;
    for f in reader.files() {
        let shard = TableReader::from_files(vec![f.clone()]).arrow_schema()?;
        if shard.fields() != schema.fields() {
            return Err(StageError::msg(format!(
                "{}: columns differ from the first shard's",
                f.display()
            )));
        }
    }
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    Ok(Output {
        rows: Some(reader.row_count()?),
        schema: schema.metadata().get(schemas::SCHEMA_METADATA_KEY).cloned(),
        meta: serde_json::json!({"shards": reader.files().len(), "columns": columns}),
    })
}

impl Stage for Command {
    type Config = CommandConfig;
    const KIND: &'static str = "command";
    const VERSION: u32 = 1;
    const DOC: &'static str =
        "Run an external program with declared inputs; it writes its output into {out}.";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "*",
        kinds: &[],
        schema: None,
        arity: Arity::Many,
        doc: "any inputs, each used in argv as {input.NAME}",
    }];
    const OUTPUT: OutputDecl = OutputDecl::FromConfig {
        key: "output",
        default: ArtifactKind::Files,
    };

    fn resources(config: &CommandConfig) -> Resources {
        Resources {
            threads: config.threads.max(1),
            ..Resources::default()
        }
    }

    fn validate(config: &CommandConfig, bindings: &Bindings) -> Result<(), String> {
        if config.argv.is_empty() {
            return Err("`argv` is empty: name a program".into());
        }
        for name in referenced_inputs(&config.argv) {
            if !bindings.contains_key(&name) {
                return Err(format!(
                    "argv uses {{input.{name}}} but the node binds no input `{name}`"
                ));
            }
        }
        for name in bindings.keys() {
            if !referenced_inputs(&config.argv).contains(name) {
                return Err(format!(
                    "input `{name}` is bound but argv never uses {{input.{name}}}"
                ));
            }
        }
        if let Some(bad) = config
            .env
            .keys()
            .chain(&config.pass_env)
            .find(|k| k.contains('='))
        {
            return Err(format!("environment variable name `{bad}` contains `=`"));
        }
        Ok(())
    }

    fn externals(
        config: &CommandConfig,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        let program = resolve_program(&config.argv[0], recipe_dir)?;
        let mut out = vec![(
            format!("program {}", program.display()),
            files.digest(&program).context(program.display())?,
        )];
        for dep in &config.deps {
            let p = pipeline::context::resolve_against(recipe_dir, dep);
            out.push((format!("dep {dep}"), files.digest(&p).context(p.display())?));
        }
        Ok(out)
    }

    async fn run(&self, config: CommandConfig, ctx: StageContext) -> Result<Output, StageError> {
        let mut vars = BTreeMap::new();
        vars.insert("out".to_string(), ctx.out_dir.display().to_string());
        vars.insert("scratch".to_string(), ctx.scratch_dir.display().to_string());
        vars.insert(
            "recipe_dir".to_string(),
            ctx.recipe_dir.display().to_string(),
        );
        for (name, arts) in ctx.all_inputs() {
            if let Some(a) = arts.first() {
                vars.insert(format!("input.{name}"), a.dir.display().to_string());
            }
        }
        let program = resolve_program(&config.argv[0], &ctx.recipe_dir)?;
        let args: Vec<String> = config.argv[1..]
            .iter()
            .map(|a| substitute(a, &vars))
            .collect();

        // The program writes its streams into scratch; they reach the run's log folder
        // only through the redactor, so a secret it prints is never kept.
        let raw_stdout = ctx.scratch_dir.join("stdout");
        let raw_stderr = ctx.scratch_dir.join("stderr");
        let stdout = std::fs::File::create(&raw_stdout).context(raw_stdout.display())?;
        let stderr = std::fs::File::create(&raw_stderr).context(raw_stderr.display())?;

        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args)
            .current_dir(&ctx.recipe_dir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        for name in &config.pass_env {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        cmd.envs(&config.env);
        let mut child = cmd
            .spawn()
            .context(format!("starting {}", program.display()))?;
        let status = if config.timeout_secs > 0 {
            match tokio::time::timeout(Duration::from_secs(config.timeout_secs), child.wait()).await
            {
                Ok(s) => Some(s.context("waiting for the program")?),
                Err(_) => {
                    let _ = child.kill().await;
                    None
                }
            }
        } else {
            Some(child.wait().await.context("waiting for the program")?)
        };
        let logs = ctx.log_dir();
        std::fs::create_dir_all(&logs).context(logs.display())?;
        let stdout_path = logs.join(format!("{}.stdout", ctx.node));
        let stderr_path = logs.join(format!("{}.stderr", ctx.node));
        for (from, to) in [(&raw_stdout, &stdout_path), (&raw_stderr, &stderr_path)] {
            let text = std::fs::read(from).context(from.display())?;
            let text = ctx.redact(&String::from_utf8_lossy(&text));
            std::fs::write(to, text).context(to.display())?;
        }
        let Some(status) = status else {
            return Err(StageError::msg(format!(
                "killed after {} s (timeout_secs); stderr: {}",
                config.timeout_secs,
                stderr_path.display()
            )));
        };
        if !status.success() {
            return Err(StageError::msg(format!(
                "{} exited with {status}; last lines of stderr ({}):\n{}",
                config.argv[0],
                stderr_path.display(),
                tail(&stderr_path, 10)
            )));
        }
        if config.output == ArtifactKind::Table {
            return table_output(&ctx.out_dir);
        }
        Ok(Output::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_substituted_but_other_braces_kept() {
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            "awk '{print $1}' {input.a}/x > {out}/y; cat {input.b}".to_string(),
        ];
        assert_eq!(referenced_inputs(&argv), vec!["a", "b"]);
        let vars: BTreeMap<String, String> = [
            ("out".to_string(), "/o".to_string()),
            ("input.a".to_string(), "/a".to_string()),
        ]
        .into();
        assert_eq!(
            substitute(&argv[2], &vars),
            "awk '{print $1}' /a/x > /o/y; cat {input.b}"
        );
    }
}
