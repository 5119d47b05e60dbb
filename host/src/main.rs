//! `cue`: parse the command line, run it, print any error chain once.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cue_host::cli::Cli::parse();
    match cue_host::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
