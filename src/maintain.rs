//! `reasongen verify` and `reasongen gc`.

use anyhow::Result;
use pipeline::Store;
use pipeline::store::{GcOptions, StoreLock};
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Move corrupt artifacts to `quarantine/` and drop the keys and refs that point to
    /// missing ones, so the next run rebuilds them.
    #[arg(long)]
    fix: bool,
}

#[derive(clap::Args)]
pub struct GcArgs {
    /// Delete (without it, gc only prints what it would free).
    #[arg(long)]
    delete: bool,
    /// Keep only what refs reach: also forget cached results no ref points to.
    #[arg(long)]
    refs_only: bool,
}

pub fn verify(store: &Path, args: VerifyArgs) -> Result<ExitCode> {
    let store = Store::open(store)?;
    let _lock = if args.fix {
        StoreLock::exclusive(&store, "reasongen verify --fix", true, |why| {
            eprintln!("waiting: {why}")
        })?
    } else {
        StoreLock::shared(&store, true, |why| eprintln!("waiting: {why}"))?
    };
    let report = store.verify()?;
    for p in &report.problems {
        println!("{p}");
    }
    println!(
        "checked {} artifacts, {} files, {} bytes: {} problems",
        report.objects,
        report.files,
        report.bytes,
        report.problems.len()
    );
    if args.fix && !report.problems.is_empty() {
        for moved in store.repair(&report.problems)? {
            println!("quarantined {}", moved.display());
        }
        println!("repaired: the next run rebuilds what was lost");
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn gc(store: &Path, args: GcArgs) -> Result<ExitCode> {
    let store = Store::open(store)?;
    let _lock = StoreLock::exclusive(&store, "reasongen gc", true, |why| {
        eprintln!("waiting: {why}")
    })?;
    let report = store.gc(GcOptions {
        delete: args.delete,
        refs_only: args.refs_only,
    })?;
    let verb = if report.deleted {
        "removed"
    } else {
        "would remove"
    };
    for (d, bytes) in &report.objects {
        println!("{verb} artifact {d} ({bytes} bytes)");
    }
    for (p, bytes) in &report.tmp {
        println!("{verb} leftover {} ({bytes} bytes)", p.display());
    }
    if !report.keys.is_empty() {
        println!("{verb} {} cached run keys no ref uses", report.keys.len());
    }
    println!(
        "{verb} {} artifacts and {} leftovers, {} bytes; kept {} artifacts reached by refs and keys{}",
        report.objects.len(),
        report.tmp.len(),
        report.bytes(),
        report.kept_objects,
        if report.deleted {
            ""
        } else {
            " (dry run: pass --delete to free it)"
        }
    );
    Ok(ExitCode::SUCCESS)
}
