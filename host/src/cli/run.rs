//! `cue run`: run a component locally.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::datadir::DataDir;
use crate::local::{LocalRun, RunReport, run_component};
use crate::sandbox::{
    CodeSource, Limits, LogSource, Sandbox, SandboxConfig, human_bytes, parse_bytes, parse_duration,
};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component (.wasm)
    component: PathBuf,
    /// The call in WAVE, e.g. 'fib(30)' or 'count-words("a b a")', or JSON:
    /// '{"function": "fib", "args": [30]}'
    call: String,
    /// Fuel budget [default: 10000000000]
    #[arg(long)]
    fuel: Option<u64>,
    /// Memory limit, e.g. 64MiB [default: 64MiB]
    #[arg(long, value_parser = parse_bytes)]
    memory: Option<u64>,
    /// Wall-clock deadline, e.g. 5s or 500ms [default: 5s]
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Print one JSON object: result, wave, error, fuel, wall_us, peak_memory_bytes, log
    #[arg(long)]
    json: bool,
    /// Call N times, each on a fresh instance, and report p50/p99
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    repeat: u32,
    /// Do not use (or fill) the compiled-code cache
    #[arg(long)]
    no_cache: bool,
}

pub fn run(args: RunArgs, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("cannot read {}", args.component.display()))?;
    let defaults = Limits::default();
    let limits = Limits {
        fuel: args.fuel.unwrap_or(defaults.fuel),
        memory_bytes: args.memory.unwrap_or(defaults.memory_bytes),
        timeout: args.timeout.unwrap_or(defaults.timeout),
        ..defaults
    };
    let config = SandboxConfig {
        cache_dir: (!args.no_cache).then(|| data_dir.code_cache()),
        max_concurrent_jobs: 1,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config)?;
    let report = run_component(&sandbox, &bytes, &LocalRun { call: args.call, limits, repeat: args.repeat });
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_human(&report, args.repeat);
    }
    Ok(if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Log lines shown by the human output; `--json` has them all.
const SHOWN_LOG_LINES: usize = 20;

fn print_human(report: &RunReport, repeat: u32) {
    let hidden = report.log.len().saturating_sub(SHOWN_LOG_LINES);
    if hidden > 0 {
        eprintln!("[guest log: {hidden} earlier lines not shown; --json has them all]");
    }
    for line in &report.log[hidden..] {
        let source = match line.source {
            LogSource::Host(level) => format!("{level:?}").to_lowercase(),
            LogSource::Stdout => "stdout".into(),
            LogSource::Stderr => "stderr".into(),
        };
        eprintln!("[guest {source}] {}", line.text);
    }
    match (&report.wave, &report.error) {
        (Some(wave), _) => println!("{wave}"),
        (None, Some(error)) => eprintln!("error: {}: {}", error.kind, error.message),
        (None, None) => {}
    }
    let mut stats = format!(
        "fuel {} · {} · peak memory {}",
        report.fuel,
        micros(report.wall_us),
        human_bytes(report.peak_memory_bytes)
    );
    if let Some((source, time)) = report.load {
        let source = match source {
            CodeSource::Compiled => "compiled",
            CodeSource::Cache => "loaded from cache",
        };
        stats.push_str(&format!(" · code {source} in {}", micros(time.as_micros() as u64)));
    }
    if let (Some(p50), Some(p99)) = (report.p50_us, report.p99_us) {
        stats.push_str(&format!(" · {repeat} calls: p50 {}, p99 {}", micros(p50), micros(p99)));
    }
    eprintln!("{stats}");
}

fn micros(us: u64) -> String {
    if us < 1_000 { format!("{us} µs") } else { format!("{:.2} ms", us as f64 / 1_000.0) }
}
