//! `cue`: parse the command line, run it, and turn the outcome into an exit code. This is
//! the one place that prints error chains.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cue_host::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| cli.default_log_filter().into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cue_host::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
