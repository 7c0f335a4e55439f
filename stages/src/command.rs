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
use pipeline::program::{self, Invocation, resolve_program};
use pipeline::store::FileHasher;
use pipeline::{
    Arity, ArtifactKind, Bindings, Digest, InputSpec, Output, OutputDecl, Resources, ResultExt,
    Stage, StageContext, StageError,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

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

fn substitute(arg: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = arg.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
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
        program::run(
            &ctx,
            &Invocation {
                name: &config.argv[0],
                program: &program,
                args: &args,
                dir: &ctx.recipe_dir,
                env: &config.env,
                pass_env: &config.pass_env,
                timeout_secs: config.timeout_secs,
                label: "",
            },
        )
        .await?;
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
