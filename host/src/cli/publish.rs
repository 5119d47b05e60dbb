//! `cue publish`: verify, sign and announce a component through the running node.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::api::{ApiClient, encode_query};
use crate::datadir::DataDir;

/// Options of `cue publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The component file
    #[arg(required_unless_present = "js", conflicts_with = "js")]
    component: Option<PathBuf>,
    /// The name to publish under (lowercase letters, digits, `-`); owned by the first key that
    /// publishes it
    #[arg(long, required_unless_present = "js")]
    name: Option<String>,
    /// The version (semver, e.g. 1.2.0)
    #[arg(long, required_unless_present = "js")]
    version: Option<String>,
    /// Publish the JavaScript runtime built into cue, as js@<its version> (what `cue submit
    /// --js` runs; it publishes it by itself on first use)
    #[arg(long, conflicts_with_all = ["name", "version"])]
    js: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

/// Sends the component to the node, which verifies it, signs its manifest and announces it.
pub fn run(args: PublishArgs, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let api = ApiClient::discover(data_dir, Duration::from_secs(300))?;
    let report = match (&args.component, &args.name, &args.version) {
        (Some(component), Some(name), Some(version)) => {
            let bytes =
                std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
            let path = format!("/v1/publish?name={}&version={}", encode_query(name), encode_query(version));
            api.post_bytes(&path, &bytes)?
        }
        _ => api.post_bytes("/v1/publish?js=true", &[])?,
    };
    if args.json {
        println!("{report}");
    } else {
        let again = if report["already_published"] == true { " (already published)" } else { "" };
        println!(
            "published {}@{}{again}",
            report["name"].as_str().unwrap_or("?"),
            report["version"].as_str().unwrap_or("?")
        );
        println!("sha256:    {}", report["sha256"].as_str().unwrap_or("?"));
        println!("size:      {} bytes", report["size"]);
        println!("publisher: {}", report["publisher"].as_str().unwrap_or("?"));
    }
    Ok(ExitCode::SUCCESS)
}
