//! `cue network`: create a network's genesis file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use super::LedgerContext;
use crate::crypto::PeerId;
use crate::ledger::Genesis;

/// `cue network` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum NetworkCommand {
    /// Write a new genesis file: network id, initial balances, mint authority.
    Init(InitArgs),
}

/// Options of `cue network init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to write the genesis TOML (refuses to overwrite).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// An initial balance, `<peer-id>=<amount>` (repeatable).
    #[arg(long, value_name = "PEER=AMOUNT")]
    pub alloc: Vec<String>,
    /// The mint authority's peer id or hex public key [default: this agent].
    #[arg(long, value_name = "KEY")]
    pub mint_authority: Option<String>,
    /// The network's name.
    #[arg(long, default_value = "cue-local")]
    pub network_id: String,
}

/// Writes the genesis file and prints its id.
pub fn run(command: NetworkCommand, ctx: &LedgerContext) -> anyhow::Result<ExitCode> {
    let NetworkCommand::Init(args) = command;
    let mint_authority = match &args.mint_authority {
        Some(key) => key.parse::<PeerId>()?.public_key(),
        None => ctx.keypair()?.public(),
    };
    let mut allocations = BTreeMap::new();
    for alloc in &args.alloc {
        let (peer, amount) = alloc
            .split_once('=')
            .with_context(|| format!("--alloc {alloc:?}: expected <peer-id>=<amount>"))?;
        let peer = peer.parse::<PeerId>()?.public_key();
        let amount: u64 = amount
            .parse()
            .with_context(|| format!("--alloc {alloc:?}: the amount must be a whole number"))?;
        if allocations.insert(peer, amount).is_some() {
            bail!("--alloc: {} is allocated twice", peer.peer_id());
        }
    }
    let genesis = Genesis { network_id: args.network_id, mint_authority, allocations };
    let toml = genesis.to_toml()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    std::io::Write::write_all(&mut file, toml.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("genesis {} written to {}", genesis.id(), args.out.display());
    Ok(ExitCode::SUCCESS)
}
