//! `cue benchmark`: measure this machine, sign its resource manifest, store it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::LedgerContext;
use super::policy::PolicyArgs;
use crate::benchmark::{Measurement, Plan, measure_and_sign};
use crate::clock::now_ms;
use crate::datadir::DataDir;
use crate::market::ResourceManifest;
use crate::protocol::Signed;
use crate::sandbox::{Sandbox, SandboxConfig, human_bytes, parse_duration};

/// Options of `cue benchmark`.
#[derive(Debug, Args)]
pub struct BenchmarkArgs {
    /// Print one JSON object: the manifest's fields, its expiry, hash and signed bytes (hex)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    policy: PolicyArgs,
    /// How long peers may believe the manifest, e.g. 1h (at most 24h)
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    valid_for: Duration,
}

/// Measures, signs with the agent's key and writes `<data-dir>/manifest.cbor`.
pub fn run(args: BenchmarkArgs, ledger: &LedgerContext, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let keypair = ledger.keypair()?;
    let sandbox = Sandbox::new(SandboxConfig { max_concurrent_jobs: 1, ..SandboxConfig::default() })?;
    let policy = args.policy.policy();
    let genesis = ledger.genesis()?.map_or(crate::market::NO_NETWORK, |genesis| genesis.id());
    let (measurement, signed) =
        measure_and_sign(&sandbox, Plan::default(), &keypair, genesis, policy, now_ms(), args.valid_for)?;
    let path = data_dir.manifest();
    std::fs::create_dir_all(data_dir.root())
        .and_then(|()| std::fs::write(&path, signed.bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    if args.json {
        println!("{}", json(&signed)?);
    } else {
        print_human(&measurement, &signed);
        eprintln!("signed manifest written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn json(signed: &Signed<ResourceManifest>) -> anyhow::Result<serde_json::Value> {
    let mut json = serde_json::to_value(signed.body())?;
    let object = json.as_object_mut().context("a manifest is a JSON object")?;
    object.insert("peer_id".into(), signed.body().peer_id().to_string().into());
    object.insert("expires_ms".into(), signed.header().expires_ms.into());
    object.insert("hash".into(), signed.hash().to_string().into());
    object.insert("signed".into(), hex::encode(signed.bytes()).into());
    Ok(json)
}

fn print_human(measurement: &Measurement, signed: &Signed<ResourceManifest>) {
    let m = signed.body();
    let p = &m.policy;
    let rows = [
        ("provider", m.peer_id().to_string()),
        ("cores", m.cores.to_string()),
        ("memory available", human_bytes(m.memory_bytes)),
        ("fuel per second", format!("{} (median of {} runs)", m.fuel_per_second, measurement.runs.len())),
        ("engine", format!("{} (wasmtime {})", m.engine, m.wasmtime)),
        ("price per Mfuel", p.price_per_mfuel.to_string()),
        ("base fee", p.base_fee.to_string()),
        ("max concurrent jobs", p.max_concurrent_jobs.to_string()),
        ("max memory per job", human_bytes(p.max_memory_bytes)),
        ("max time per job", format!("{} ms", p.max_execution_ms)),
        ("expires", format!("{} ms after the epoch", signed.header().expires_ms)),
    ];
    for (name, value) in rows {
        println!("{name:<20} {value}");
    }
}
