//! `cue jobs` and `cue job <id>`: the contracts this node is a party to.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::api::ApiClient;
use crate::datadir::DataDir;

/// Options of `cue jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Most contracts to show
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print a JSON array
    #[arg(long)]
    json: bool,
}

/// Options of `cue job`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job id (32 hex characters, as `cue submit` prints it)
    job: String,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

/// Lists contracts, most recently changed first.
pub fn list(args: JobsArgs, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let api = ApiClient::discover(data_dir, Duration::from_secs(30))?;
    let jobs = api.get(&format!("/v1/jobs?limit={}", args.limit))?;
    if args.json {
        println!("{jobs}");
        return Ok(ExitCode::SUCCESS);
    }
    for c in jobs.as_array().into_iter().flatten() {
        println!(
            "{} {:<8} {:<9} peer {} price {} {}",
            c["job"].as_str().unwrap_or("?"),
            c["role"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["peer"].as_str().unwrap_or("?"),
            c["price"],
            c["detail"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows one job: its contracts, events, receipts and payments.
pub fn show(args: JobArgs, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let api = ApiClient::discover(data_dir, Duration::from_secs(30))?;
    let job = api.get(&format!("/v1/jobs/{}", crate::api::encode_query(&args.job)))?;
    if args.json {
        println!("{job}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("job {}", job["job"].as_str().unwrap_or("?"));
    for c in job["contracts"].as_array().into_iter().flatten() {
        println!(
            "contract {} ({} with {}): {}",
            c["contract"].as_str().unwrap_or("?"),
            c["role"].as_str().unwrap_or("?"),
            c["peer"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?")
        );
        println!("  receipt {}  payment {}  price {}", c["receipt"], c["payment"], c["price"]);
        if let Some(detail) = c["detail"].as_str() {
            println!("  {detail}");
        }
    }
    for e in job["events"].as_array().into_iter().flatten() {
        println!("event {:<24} {}", e["kind"].as_str().unwrap_or("?"), e["hash"].as_str().unwrap_or("?"));
    }
    Ok(ExitCode::SUCCESS)
}
