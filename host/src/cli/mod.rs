//! The `cue` command line: global options and one module per subcommand.

pub mod id;
pub mod network;
pub mod wallet;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::crypto::Keypair;
use crate::ledger::Genesis;
use crate::store::LedgerStore;

/// Cue: a peer-to-peer market for verifiable WebAssembly compute.
#[derive(Debug, clap::Parser)]
#[command(name = "cue", version)]
pub struct Cli {
    /// Where this agent keeps its key and its ledger [default: the platform data dir + /cue].
    #[arg(long, global = true, env = "CUE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The network's genesis file (needed the first time a ledger is used).
    #[arg(long, global = true, env = "CUE_GENESIS", value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print this agent's peer id and public key (creating the key on first use).
    Id(id::IdArgs),
    /// Create a network (its genesis file).
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Balances, history, transfers and mints on the local ledger.
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
}

/// What every command gets from the global options.
#[derive(Debug, Clone)]
pub struct Context {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The genesis file, if given.
    pub genesis: Option<PathBuf>,
}

impl Context {
    /// The context for the parsed global options.
    pub fn new(data_dir: Option<PathBuf>, genesis: Option<PathBuf>) -> anyhow::Result<Context> {
        let data_dir = match data_dir {
            Some(dir) => dir,
            None => dirs::data_dir()
                .context("no platform data directory; pass --data-dir or set CUE_DATA_DIR")?
                .join("cue"),
        };
        Ok(Context { data_dir, genesis })
    }

    /// The agent's key file.
    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("identity.key")
    }

    /// The event log and ledger database.
    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir.join("ledger.sqlite3")
    }

    /// Loads (or creates) the agent's key.
    pub fn keypair(&self) -> anyhow::Result<Keypair> {
        Ok(Keypair::load_or_create(&self.key_path())?.0)
    }

    /// The genesis given with `--genesis`, if any.
    pub fn genesis(&self) -> anyhow::Result<Option<Genesis>> {
        self.genesis.as_deref().map(read_genesis).transpose()
    }

    /// Opens the local ledger (creating it from the genesis on first use).
    pub fn open_ledger(&self) -> anyhow::Result<LedgerStore> {
        let path = self.ledger_path();
        LedgerStore::open(&path, self.genesis()?)
            .with_context(|| format!("cannot open the ledger at {}", path.display()))
    }
}

fn read_genesis(path: &Path) -> anyhow::Result<Genesis> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read genesis file {}", path.display()))?;
    Genesis::from_toml(&text).with_context(|| format!("genesis file {}", path.display()))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context::new(cli.data_dir, cli.genesis)?;
    match cli.command {
        Command::Id(args) => id::run(args, &ctx),
        Command::Network(command) => network::run(command, &ctx),
        Command::Wallet(command) => wallet::run(command, &ctx),
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
