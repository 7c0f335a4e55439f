//! `reasongen export NODE --out DIR`: write a node's table as a dataset release (or
//! copy a node's release) into a folder.

use anyhow::{Context, Result, bail};
use datasets::release::{CardInfo, export as export_table};
use pipeline::{ArtifactKind, Store};
use stages::release_export::ExportConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// A node (`NODE` or `RECIPE/NODE`) whose artifact is a table or a release.
    node: String,
    /// The folder to write (absent or empty).
    #[arg(long)]
    out: PathBuf,
    /// Licence identifier for the card (required for a table).
    #[arg(long)]
    license: Option<String>,
    /// A split and its fraction, e.g. `--split train=0.9 --split test=0.1`.
    #[arg(long = "split", value_name = "NAME=FRACTION")]
    splits: Vec<String>,
    /// Seed of the split hash.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Name on the card.
    #[arg(long)]
    name: Option<String>,
    /// A paragraph for the card.
    #[arg(long, default_value = "")]
    description: String,
    /// The column that identifies a row.
    #[arg(long, default_value = "id")]
    id_column: String,
}

pub fn export(store: &Path, args: ExportArgs) -> Result<ExitCode> {
    let store = Store::open(store)?;
    let (recipe, node, r) = crate::inspect::find_ref(&store, &args.node)?;
    let manifest = store.manifest(&r.digest)?;
    let dir = store.object_dir(&r.digest);
    match manifest.content.kind {
        ArtifactKind::Release => {
            if args.license.is_some() || !args.splits.is_empty() {
                bail!(
                    "`{recipe}/{node}` is already a release; export copies it as it is, without options"
                );
            }
            copy_release(&dir, &args.out, &manifest.content.files)?;
        }
        ArtifactKind::Table => {
            let license = args
                .license
                .clone()
                .context("--license is required to export a table (e.g. --license cc-by-4.0)")?;
            let mut splits = BTreeMap::new();
            for s in &args.splits {
                let (name, f) = s
                    .split_once('=')
                    .with_context(|| format!("--split {s}: expected NAME=FRACTION"))?;
                let f: f64 = f
                    .parse()
                    .with_context(|| format!("--split {s}: bad fraction"))?;
                splits.insert(name.to_string(), f);
            }
            let mut config: ExportConfig =
                serde_json::from_value(serde_json::json!({"license": license}))?;
            if !splits.is_empty() {
                config.splits = splits;
            }
            config.seed = args.seed;
            config.name = args.name.clone();
            config.description = args.description.clone();
            config.id_column = args.id_column.clone();
            let options = config
                .options(CardInfo {
                    recipe,
                    node,
                    run_key: manifest.lineage.run_key.to_hex(),
                    source: r.digest.to_hex(),
                    ..CardInfo::default()
                })
                .map_err(anyhow::Error::msg)?;
            let report = export_table(&dir, &args.out, &options)?;
            for s in &report.splits {
                println!("{}: {} rows in {} shards", s.name, s.rows, s.shards);
            }
        }
        other => bail!("`{}` holds a {other}, not a table or a release", args.node),
    }
    println!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

fn copy_release(from: &Path, to: &Path, files: &[pipeline::artifact::FileEntry]) -> Result<()> {
    if to.exists() && std::fs::read_dir(to)?.next().is_some() {
        bail!("{}: the release folder must be empty", to.display());
    }
    for f in files {
        let dst = to.join(&f.path);
        std::fs::create_dir_all(dst.parent().expect("files have parents"))?;
        std::fs::copy(from.join(&f.path), &dst).with_context(|| format!("copying {}", f.path))?;
        // Store files are read-only; the copy is the user's.
        let mut perms = std::fs::metadata(&dst)?.permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&dst, perms)?;
    }
    Ok(())
}
