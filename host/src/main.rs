//! `cue`: parse the command line, run it, and turn the outcome into an exit code. This is
//! the one place that prints error chains.

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> ExitCode {
    let cli = cue_host::cli::Cli::parse();
    // One filter for both: what the terminal shows, the dashboard's Log view shows too.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| cli.default_log_filter().into()),
        )
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(cue_host::logfeed::LogFeedLayer)
        .init();
    match cue_host::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
