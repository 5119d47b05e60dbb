//! `cue build`: build a job crate into a component and show what was built.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::authoring::build;
use crate::sandbox::human_bytes;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The job crate [default: the current directory]
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Also write the component's WIT to this file
    #[arg(long, value_name = "FILE")]
    wit: Option<PathBuf>,
    /// Print one JSON object: component, sha256, size, wit, imports, runnable
    #[arg(long)]
    json: bool,
}

pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let built = build(&args.path)?;
    let report = &built.report;
    if let Some(file) = &args.wit {
        std::fs::write(file, &report.wit).with_context(|| format!("cannot write {}", file.display()))?;
    }
    if args.json {
        let mut json = serde_json::to_value(report)?;
        json["component"] = serde_json::json!(built.path);
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("component {}", built.path.display());
        println!("size      {} ({} bytes)", human_bytes(report.size as u64), report.size);
        println!("sha256    {}", report.sha256);
        println!("\n{}", report.wit.trim_end());
    }
    Ok(if report.runnable { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
