//! `cue run`: run a component locally, or JavaScript (`--js`) on the runtime built into `cue`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::datadir::DataDir;
use crate::local::js::{JsReport, JsRun, run_js};
use crate::local::{LocalRun, RunReport, run_component};
use crate::sandbox::{
    CodeSource, Limits, LogLine, LogSource, Sandbox, SandboxConfig, human_bytes, parse_bytes, parse_duration,
};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component (.wasm)
    #[arg(required_unless_present = "js", conflicts_with = "js")]
    component: Option<PathBuf>,
    /// The call in WAVE, e.g. 'fib(30)' or 'count-words("a b a")', or JSON:
    /// '{"function": "fib", "args": [30]}'
    #[arg(required_unless_present = "js")]
    call: Option<String>,
    /// Run JavaScript instead of a component: a function expression such as
    /// '(a, b) => a * b', or @FILE to read it from a file (on the runtime built into cue)
    #[arg(long, value_name = "CODE")]
    js: Option<String>,
    /// With --js: the arguments, a JSON array
    #[arg(long, value_name = "JSON", default_value = "[]", requires = "js")]
    args: String,
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
    if let Some(code) = &args.js {
        let code = match code.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?,
            None => code.clone(),
        };
        let run = JsRun { code, args: args.args.clone(), limits, repeat: args.repeat };
        return print_js(&run_js(&sandbox, &run), &args);
    }
    let (Some(component), Some(call)) = (args.component, args.call) else {
        anyhow::bail!("cue run needs a component and a call, or --js");
    };
    let bytes = std::fs::read(&component).with_context(|| format!("cannot read {}", component.display()))?;
    let report = run_component(&sandbox, &bytes, &LocalRun { call, limits, repeat: args.repeat });
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_human(&report, args.repeat);
    }
    Ok(if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_js(report: &JsReport, args: &RunArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print_log(&report.log);
        match (&report.text, &report.error) {
            (Some(text), _) => println!("{text}"),
            (None, Some(error)) => {
                let at = match (error.line, error.column) {
                    (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
                    _ => String::new(),
                };
                eprintln!("error: {}: {}{at}", error.kind, error.message)
            }
            (None, None) => {}
        }
        let stats =
            Stats { fuel: report.fuel, wall_us: report.wall_us, peak_memory_bytes: report.peak_memory_bytes };
        print_stats(&stats, report.load, (report.p50_us, report.p99_us), args.repeat);
    }
    Ok(if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Log lines shown by the human output; `--json` has them all.
const SHOWN_LOG_LINES: usize = 20;

fn print_human(report: &RunReport, repeat: u32) {
    print_log(&report.log);
    match (&report.wave, &report.error) {
        (Some(wave), _) => println!("{wave}"),
        (None, Some(error)) => eprintln!("error: {}: {}", error.kind, error.message),
        (None, None) => {}
    }
    let stats =
        Stats { fuel: report.fuel, wall_us: report.wall_us, peak_memory_bytes: report.peak_memory_bytes };
    print_stats(&stats, report.load, (report.p50_us, report.p99_us), repeat);
}

/// Prints a job's log lines to stderr, `[guest <source>] text`: the last 20 of them.
pub(super) fn print_log(log: &[LogLine]) {
    let hidden = log.len().saturating_sub(SHOWN_LOG_LINES);
    if hidden > 0 {
        eprintln!("[guest log: {hidden} earlier lines not shown; --json has them all]");
    }
    for line in &log[hidden..] {
        let source = match line.source {
            LogSource::Host(level) => format!("{level:?}").to_lowercase(),
            LogSource::Stdout => "stdout".into(),
            LogSource::Stderr => "stderr".into(),
        };
        eprintln!("[guest {source}] {}", line.text);
    }
}

/// What the last call cost, for the summary line.
struct Stats {
    fuel: u64,
    wall_us: u64,
    peak_memory_bytes: u64,
}

fn print_stats(
    stats: &Stats,
    load: Option<(CodeSource, Duration)>,
    percentiles: (Option<u64>, Option<u64>),
    repeat: u32,
) {
    let mut stats = format!(
        "fuel {} · {} · peak memory {}",
        stats.fuel,
        micros(stats.wall_us),
        human_bytes(stats.peak_memory_bytes)
    );
    if let Some((source, time)) = load {
        let source = match source {
            CodeSource::Compiled => "compiled",
            CodeSource::Cache => "loaded from cache",
        };
        stats.push_str(&format!(" · code {source} in {}", micros(time.as_micros() as u64)));
    }
    if let (Some(p50), Some(p99)) = percentiles {
        stats.push_str(&format!(" · {repeat} calls: p50 {}, p99 {}", micros(p50), micros(p99)));
    }
    eprintln!("{stats}");
}

fn micros(us: u64) -> String {
    if us < 1_000 { format!("{us} µs") } else { format!("{:.2} ms", us as f64 / 1_000.0) }
}
