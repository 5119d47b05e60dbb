//! `cue status`: what the running node of this data dir is doing.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::api::ApiClient;
use crate::datadir::DataDir;

/// Options of `cue status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the node's status object as JSON
    #[arg(long)]
    json: bool,
}

/// Prints the node's peer id, addresses, peers, manifest and refusal counters.
pub fn run(args: StatusArgs, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let api = ApiClient::discover(data_dir, Duration::from_secs(30))?;
    let status = api.get("/v1/status")?;
    if args.json {
        println!("{status}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("peer id:   {}", status["peer_id"].as_str().unwrap_or("?"));
    for addr in status["listen_addrs"].as_array().into_iter().flatten() {
        println!("listening: {}", addr.as_str().unwrap_or("?"));
    }
    println!("peers:     {}", status["connected_peers"].as_array().map_or(0, Vec::len));
    match status["manifest"].as_object() {
        Some(manifest) => println!("providing: {} fuel/s", manifest["fuel_per_second"]),
        None => println!("providing: no"),
    }
    let refused: Vec<String> = status["refused"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    println!("refused:   {}", if refused.is_empty() { "nothing".to_owned() } else { refused.join(", ") });
    Ok(ExitCode::SUCCESS)
}
