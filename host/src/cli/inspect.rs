//! `cue inspect`: what a component is, without running it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::sandbox::{human_bytes, inspect};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The component (.wasm)
    component: PathBuf,
    /// Print one JSON object: sha256, size, wit, imports (with verdicts), runnable
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("cannot read {}", args.component.display()))?;
    let report = match inspect(&bytes) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {}: {}", error.kind, error.message);
            return Ok(ExitCode::from(1));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("component {}", args.component.display());
    println!("sha256    {}", report.sha256);
    println!("size      {} ({} bytes)", human_bytes(report.size as u64), report.size);
    println!("imports");
    for import in &report.imports {
        let mark = if import.granted { "granted" } else { "REFUSED" };
        println!("  {mark:<8} {:<40} {}", import.name, import.detail);
    }
    if report.imports.is_empty() {
        println!("  (none)");
    }
    let refused: Vec<&str> = report.imports.iter().filter(|v| !v.granted).map(|v| v.name.as_str()).collect();
    if refused.is_empty() {
        println!("verdict   runnable: every import is granted");
    } else {
        println!("verdict   refused: this host does not grant {}", refused.join(", "));
    }
    println!("\n{}", report.wit.trim_end());
    Ok(ExitCode::SUCCESS)
}
