//! `cue submit`: run a job on the network through the running node.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::api::ApiClient;
use crate::datadir::DataDir;
use crate::sandbox::{parse_bytes, parse_duration};

/// Options of `cue submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The component: `name@<semver req>`, `sha256:<hex>`, or a file
    #[arg(required_unless_present = "js", conflicts_with = "js")]
    reference: Option<String>,
    /// The call, in WAVE, e.g. 'fib(30)'
    #[arg(required_unless_present_any = ["call_file", "js"], conflicts_with = "call_file")]
    call: Option<String>,
    /// Run JavaScript instead of a component: a function expression such as
    /// '(a, b) => a * b', or @FILE to read it from a file (on the runtime built into cue,
    /// published by this node as js@<version> for providers to fetch)
    #[arg(long, value_name = "CODE", conflicts_with = "call_file")]
    js: Option<String>,
    /// With --js: the arguments, a JSON array
    #[arg(long, value_name = "JSON", default_value = "[]", requires = "js")]
    args: String,
    /// Read the call from FILE (`-`: standard input): for calls too long for a command line.
    /// Calls over 32 KiB travel on the job stream (at most 8 MiB)
    #[arg(long, value_name = "FILE")]
    call_file: Option<std::path::PathBuf>,
    /// The most to pay each provider [default: the provider's price for the fuel budget]
    #[arg(long, value_name = "N")]
    pay: Option<u64>,
    /// Fuel budget [default: with --pay, the most fuel the offer buys from each provider
    /// (after its base fee, at its price per Mfuel); without, 10000000000]
    #[arg(long, value_name = "N")]
    max_fuel: Option<u64>,
    /// Wall-clock limit, e.g. 5s
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    timeout: Duration,
    /// Memory limit, e.g. 64MiB
    #[arg(long, value_parser = parse_bytes, default_value = "64MiB")]
    memory: u64,
    /// Run on K providers with the same engine; the majority's result is paid
    #[arg(long, value_name = "K", default_value_t = 1)]
    replicas: usize,
    /// Only this provider (peer id)
    #[arg(long, value_name = "PEER")]
    provider: Option<String>,
    /// Most providers tried per replica
    #[arg(long, value_name = "N", default_value_t = 3)]
    attempts: usize,
    /// Fuel spent at most re-running here a failure one provider alone reports, to confirm it
    /// before paying (0: never)
    #[arg(long, value_name = "N", default_value_t = crate::node::DEFAULT_AUDIT_FUEL)]
    audit_fuel: u64,
    /// Print one JSON object: result, wave, error (as `cue run --json`), provider, fuel, cost,
    /// receipt, attempts
    #[arg(long)]
    json: bool,
}

/// Submits, shows progress, prints the result and the contract's facts.
pub fn run(args: SubmitArgs, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let mut body = job(&args)?;
    let api = ApiClient::discover(data_dir, args.timeout * 4 + Duration::from_secs(120))?;
    let options = json!({
        "offer": args.pay,
        "max_fuel": args.max_fuel,
        "max_memory_bytes": args.memory,
        "timeout_ms": args.timeout.as_millis() as u64,
        "replicas": args.replicas,
        "provider": args.provider,
        "max_attempts": args.attempts,
        "audit_fuel": args.audit_fuel,
    });
    if let (Some(body), Some(options)) = (body.as_object_mut(), options.as_object()) {
        body.extend(options.clone());
    }
    let bar = ProgressBar::hidden();
    let report = api.post_stream("/v1/submit", &body, |line| {
        let (done, total) = (line["progress"]["done"].as_u64(), line["progress"]["total"].as_u64());
        if let (Some(done), Some(total)) = (done, total)
            && !args.json
        {
            if bar.is_hidden() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
            bar.set_length(total);
            bar.set_position(done);
        }
    })?;
    bar.finish_and_clear();
    let failed = !report["error"].is_null();
    if args.json {
        println!("{report}");
    } else {
        print_human(&report);
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// What the job runs, as the API's submit body: `{"reference", "call"}` or `{"js", "args"}`.
fn job(args: &SubmitArgs) -> anyhow::Result<serde_json::Value> {
    if let Some(code) = &args.js {
        let code = match code.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?,
            None => code.clone(),
        };
        return Ok(json!({ "js": code, "args": args.args }));
    }
    let Some(reference) = &args.reference else { anyhow::bail!("give a component, or --js CODE") };
    let reference = match std::path::Path::new(reference).is_file() {
        true => std::fs::canonicalize(reference)?.display().to_string(),
        false => reference.clone(),
    };
    let call = match (&args.call, &args.call_file) {
        (Some(call), _) => call.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the call from {}", path.display()))?,
        (None, None) => anyhow::bail!("give the call, or --call-file FILE"),
    };
    Ok(json!({ "reference": reference, "call": call }))
}

fn print_human(report: &serde_json::Value) {
    let log: Vec<crate::sandbox::LogLine> = serde_json::from_value(report["log"].clone()).unwrap_or_default();
    super::run::print_log(&log);
    let error = &report["error"];
    match (report["json_text"].as_str(), report["wave"].as_str()) {
        _ if !error.is_null() => {
            let at = match (error["line"].as_u64(), error["column"].as_u64()) {
                (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
                _ => String::new(),
            };
            println!(
                "error ({}): {}{at}",
                error["kind"].as_str().unwrap_or("?"),
                error["message"].as_str().unwrap_or("?")
            )
        }
        (Some(json), _) => println!("{json}"),
        (None, Some(wave)) => println!("{wave}"),
        (None, None) => println!("{}", report["result"]),
    }
    eprintln!(
        "provider {} · fuel {} · cost {} · receipt {} · job {}",
        report["provider"].as_str().unwrap_or("?"),
        report["fuel"],
        report["cost"],
        report["receipt"].as_str().unwrap_or("?"),
        report["job"].as_str().unwrap_or("?"),
    );
    let attempts = report["attempts"].as_array().map(Vec::as_slice).unwrap_or_default();
    if attempts.len() > 1 {
        for a in attempts {
            let detail =
                a["detail"].as_str().filter(|d| !d.is_empty()).map(|d| format!(": {d}")).unwrap_or_default();
            eprintln!(
                "  attempt {} {}{detail} (paid {})",
                a["provider"].as_str().unwrap_or("?"),
                a["outcome"].as_str().unwrap_or("?"),
                a["paid"]
            );
        }
    }
}
