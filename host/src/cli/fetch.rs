//! `cue fetch`: resolve a component reference and fetch its bytes through the running node.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::api::ApiClient;
use crate::datadir::DataDir;

/// Transfers smaller than this show no progress bar.
const PROGRESS_BAR_FROM: u64 = 1024 * 1024;

/// Options of `cue fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// `name@<semver req>` (e.g. fib@^1.2), `sha256:<hex>`, or a component file
    reference: String,
    /// Also copy the component to this file
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

/// Asks the node to resolve and fetch; shows progress for large components.
pub fn run(args: FetchArgs, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let reference = match std::path::Path::new(&args.reference).is_file() {
        true => std::fs::canonicalize(&args.reference)?.display().to_string(),
        false => args.reference.clone(),
    };
    let api = ApiClient::discover(data_dir, Duration::from_secs(600))?;
    let bar = ProgressBar::hidden();
    let report = api.post_stream("/v1/fetch", &json!({ "reference": reference }), |line| {
        let (received, total) = (line["progress"]["received"].as_u64(), line["progress"]["total"].as_u64());
        if let (Some(received), Some(total)) = (received, total)
            && total >= PROGRESS_BAR_FROM
            && !args.json
        {
            if bar.is_hidden() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_length(total);
                bar.set_style(
                    ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
            bar.set_position(received);
        }
    })?;
    bar.finish_and_clear();
    let path = PathBuf::from(report["path"].as_str().context("the report names no path")?);
    if let Some(out) = &args.out {
        std::fs::copy(&path, out).with_context(|| format!("cannot copy to {}", out.display()))?;
    }
    if args.json {
        println!("{report}");
        return Ok(ExitCode::SUCCESS);
    }
    if let (Some(name), Some(version)) = (report["name"].as_str(), report["version"].as_str()) {
        println!("{name}@{version} by {}", report["publisher"].as_str().unwrap_or("?"));
    }
    println!("sha256: {}", report["sha256"].as_str().unwrap_or("?"));
    println!("size:   {} bytes", report["size"]);
    println!("from:   {}", report["source"].as_str().unwrap_or("?"));
    println!("path:   {}", args.out.as_ref().unwrap_or(&path).display());
    Ok(ExitCode::SUCCESS)
}
