//! `cue id`: print this agent's peer id and public key.

use std::process::ExitCode;

use super::LedgerContext;
use crate::crypto::Keypair;

/// Options of `cue id`.
#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// Print `{"peer_id": ..., "public_key": ...}`.
    #[arg(long)]
    pub json: bool,
}

/// Prints the peer id and the hex public key, creating the key (mode 0600) on first use.
pub fn run(args: IdArgs, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let (keypair, created) = Keypair::load_or_create(&ctx.key_path())?;
    let public_key = keypair.public().to_hex();
    if args.json {
        let json = serde_json::json!({ "peer_id": keypair.peer_id().to_string(), "public_key": public_key });
        println!("{json}");
    } else {
        println!("peer id:    {}", keypair.peer_id());
        println!("public key: {public_key}");
        if created {
            eprintln!("created a new key at {}", ctx.key_path().display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
