//! What the identity and ledger commands share: the agent's key, the genesis file and the
//! local ledger, all found through the data directory.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::crypto::Keypair;
use crate::datadir::DataDir;
use crate::ledger::Genesis;
use crate::store::LedgerStore;

/// The data dir and the `--genesis` file, as the global options gave them.
#[derive(Debug, Clone)]
pub struct LedgerContext {
    data_dir: DataDir,
    genesis: Option<PathBuf>,
}

impl LedgerContext {
    /// The context for the parsed global options.
    pub fn new(data_dir: DataDir, genesis: Option<PathBuf>) -> LedgerContext {
        LedgerContext { data_dir, genesis }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &DataDir {
        &self.data_dir
    }

    /// The agent's key file (libp2p protobuf encoding, mode 0600).
    pub fn key_path(&self) -> PathBuf {
        self.data_dir.identity_key()
    }

    /// The event log and ledger database.
    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir.ledger()
    }

    /// Loads (or creates) the agent's key.
    pub fn keypair(&self) -> anyhow::Result<Keypair> {
        Ok(Keypair::load_or_create(&self.key_path())?.0)
    }

    /// The genesis the `--genesis` option names, if any.
    pub fn genesis(&self) -> anyhow::Result<Option<Genesis>> {
        self.genesis.as_deref().map(read_genesis).transpose()
    }

    /// Opens the local ledger (creating it from the genesis on first use).
    pub fn open_ledger(&self) -> anyhow::Result<LedgerStore> {
        let genesis = self.genesis()?;
        let path = self.ledger_path();
        LedgerStore::open(&path, genesis)
            .with_context(|| format!("cannot open the ledger at {}", path.display()))
    }
}

fn read_genesis(path: &Path) -> anyhow::Result<Genesis> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read genesis file {}", path.display()))?;
    Genesis::from_toml(&text).with_context(|| format!("genesis file {}", path.display()))
}
