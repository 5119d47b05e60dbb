//! `cue debug`: tools for testing the network, hidden from `--help` — `cue debug hostile`
//! runs a hostile peer ([`crate::hostile`]) against the given nodes.

use std::process::ExitCode;
use std::time::Duration;

use super::LedgerContext;
use crate::hostile::{self, HostileOptions};
use crate::net::Multiaddr;
use crate::sandbox::parse_duration;

/// `cue debug` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DebugCommand {
    /// Attack nodes as a hostile peer: request floods, forged gossip, stalled streams (a
    /// testing tool; `--genesis` names their network).
    Hostile(HostileArgs),
}

/// Options of `cue debug hostile`.
#[derive(Debug, clap::Args)]
pub struct HostileArgs {
    /// A node to attack, ending in /p2p/<peer id> (repeatable)
    #[arg(long = "target", value_name = "MULTIADDR", required = true)]
    targets: Vec<Multiaddr>,
    /// How long to attack, e.g. 60s
    #[arg(long = "for", value_parser = parse_duration, default_value = "60s")]
    duration: Duration,
    /// Attacks per second
    #[arg(long, default_value_t = 20)]
    rate: u32,
}

/// Runs a debug tool.
pub fn run(command: DebugCommand, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    match command {
        DebugCommand::Hostile(args) => {
            let options = HostileOptions {
                targets: args.targets,
                genesis: ctx.genesis()?,
                duration: args.duration,
                per_second: args.rate,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = runtime.block_on(hostile::run(options))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
