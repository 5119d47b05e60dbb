//! `cue new`: scaffold a job crate that uses the guest SDK.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::authoring::{NewJob, default_sdk_path, scaffold};

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Where to create the crate (a new or empty directory)
    path: PathBuf,
    /// The crate name [default: the directory's name]
    #[arg(long)]
    name: Option<String>,
    /// The guest SDK to depend on by path [default: guest-sdk/ of the checkout `cue` was built from]
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
}

pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    let new = NewJob { path: args.path, name: args.name, sdk: args.sdk.unwrap_or_else(default_sdk_path) };
    let created = scaffold(&new)?;
    println!("created job crate `{}` in {}", created.name, created.dir.display());
    println!("next:");
    println!("  cd {}", created.dir.display());
    println!("  cue build            # or: cargo build --release --target wasm32-wasip2");
    println!(
        "  cue run {} 'greet(\"world\")'",
        created.component.strip_prefix(&created.dir).unwrap_or(&created.component).display()
    );
    Ok(ExitCode::SUCCESS)
}
