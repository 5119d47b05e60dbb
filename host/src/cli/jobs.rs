//! `cue jobs` and `cue job <id>`: the contracts this node is a party to.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use crate::api::ApiClient;
use crate::datadir::DataDir;

/// Options of `cue jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Most contracts to show (at most 10,000)
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Skip the first N (the next page)
    #[arg(long, default_value_t = 0)]
    offset: u32,
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

/// A field of the API's answer as a person reads it: a string without its JSON quotes, a
/// missing or null field (an unpaid contract's price and payment) as `-`.
fn field(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Lists contracts, most recently changed first.
pub fn list(args: JobsArgs, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let api = ApiClient::discover(data_dir, Duration::from_secs(30))?;
    let jobs = api.get(&format!("/v1/jobs?limit={}&offset={}", args.limit, args.offset))?;
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
            field(&c["price"]),
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
        println!(
            "  receipt {}  payment {}  price {}",
            field(&c["receipt"]),
            field(&c["payment"]),
            field(&c["price"])
        );
        if let Some(detail) = c["detail"].as_str() {
            println!("  {detail}");
        }
    }
    for e in job["events"].as_array().into_iter().flatten() {
        println!("event {:<24} {}", e["kind"].as_str().unwrap_or("?"), e["hash"].as_str().unwrap_or("?"));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::field;
    use serde_json::json;

    #[test]
    fn fields_print_without_quotes_and_absent_ones_as_a_dash() {
        let contract = json!({"price": null, "payment": "ab12", "receipt": "cd34"});
        assert_eq!(field(&contract["price"]), "-");
        assert_eq!(field(&contract["missing"]), "-");
        assert_eq!(field(&contract["payment"]), "ab12");
        assert_eq!(field(&json!(305)), "305");
    }
}
