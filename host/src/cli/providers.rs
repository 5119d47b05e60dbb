//! `cue providers`: discover providers through the running node and show them, best first.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use crate::api::ApiClient;
use crate::datadir::DataDir;
use crate::sandbox::human_bytes;

/// Options of `cue providers`.
#[derive(Debug, Args)]
pub struct ProvidersArgs {
    /// Print a JSON array of objects with peer_id, manifest, latency_ms, reputation, score
    #[arg(long)]
    json: bool,
}

/// Asks the node to discover providers and prints them.
pub fn run(args: ProvidersArgs, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let api = ApiClient::discover(data_dir, Duration::from_secs(120))?;
    let providers = api.get("/v1/providers")?;
    let list = providers.as_array().cloned().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&providers)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        eprintln!("no providers found");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<54} {:>14} {:>14} {:>5} {:>10} {:>9} {:>10} {:>8} {:>6} {:>8}  engine",
        "peer id",
        "fuel/s",
        "seen fuel/s",
        "cores",
        "memory",
        "price/Mf",
        "base fee",
        "latency",
        "rep",
        "score"
    );
    for provider in &list {
        println!("{}", row(provider));
    }
    eprintln!("{} provider(s)", list.len());
    Ok(ExitCode::SUCCESS)
}

fn row(p: &Value) -> String {
    let m = &p["manifest"];
    let num = |v: &Value| v.as_u64().unwrap_or(0);
    format!(
        "{:<54} {:>14} {:>14} {:>5} {:>10} {:>9} {:>10} {:>6.1}ms {:>6.2} {:>8.4}  {}",
        p["peer_id"].as_str().unwrap_or("?"),
        num(&m["fuel_per_second"]),
        p["observed_fuel_per_second"].as_u64().map_or_else(|| "-".to_owned(), |seen| seen.to_string()),
        num(&m["cores"]),
        human_bytes(num(&m["memory_bytes"])),
        num(&m["policy"]["price_per_mfuel"]),
        num(&m["policy"]["base_fee"]),
        p["latency_ms"].as_f64().unwrap_or(0.0),
        p["reputation"].as_f64().unwrap_or(0.0),
        p["score"].as_f64().unwrap_or(0.0),
        m["engine"].as_str().unwrap_or("?"),
    )
}
