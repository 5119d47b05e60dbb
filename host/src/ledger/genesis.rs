//! The genesis of a network: its id, the initial balances and the mint authority.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{LedgerError, MAX_SUPPLY};
use crate::crypto::{Digest, PeerId, PublicKey};
use crate::protocol::codec::Writer;

/// A network's starting point, shared by every node of the network as a TOML file.
///
/// ```toml
/// network_id = "cue-testnet"
/// mint_authority = "12D3KooW..."
///
/// [allocations]
/// "12D3KooW..." = 1000
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    /// Human-readable network name.
    pub network_id: String,
    /// The only key whose `TOKEN_MINT` entries are valid.
    pub mint_authority: PublicKey,
    /// Initial balances (each and their sum at most [`MAX_SUPPLY`]).
    pub allocations: BTreeMap<PublicKey, u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisFile {
    network_id: String,
    mint_authority: String,
    #[serde(default)]
    allocations: BTreeMap<String, u64>,
}

impl Genesis {
    /// Parses and checks a genesis TOML document.
    pub fn from_toml(text: &str) -> Result<Genesis, LedgerError> {
        let file: GenesisFile =
            toml::from_str(text).map_err(|e| LedgerError::InvalidGenesis(e.to_string()))?;
        let peer = |s: &str| {
            s.parse::<PeerId>()
                .map(|p| p.public_key())
                .map_err(|e| LedgerError::InvalidGenesis(e.to_string()))
        };
        let mut allocations = BTreeMap::new();
        for (peer_id, amount) in &file.allocations {
            allocations.insert(peer(peer_id)?, *amount);
        }
        let genesis =
            Genesis { network_id: file.network_id, mint_authority: peer(&file.mint_authority)?, allocations };
        genesis.total_supply()?;
        Ok(genesis)
    }

    /// The TOML document for this genesis (refused if the supply exceeds [`MAX_SUPPLY`]).
    pub fn to_toml(&self) -> Result<String, LedgerError> {
        self.total_supply()?;
        let file = GenesisFile {
            network_id: self.network_id.clone(),
            mint_authority: self.mint_authority.peer_id().to_string(),
            allocations: self.allocations.iter().map(|(k, v)| (k.peer_id().to_string(), *v)).collect(),
        };
        toml::to_string(&file).map_err(|e| LedgerError::InvalidGenesis(e.to_string()))
    }

    /// Sum of the initial balances, refused beyond [`MAX_SUPPLY`].
    pub fn total_supply(&self) -> Result<u64, LedgerError> {
        self.allocations
            .values()
            .try_fold(0u64, |sum, amount| sum.checked_add(*amount))
            .filter(|total| *total <= MAX_SUPPLY)
            .ok_or(LedgerError::SupplyOverflow)
    }

    /// The genesis id: SHA-256 of the canonical CBOR
    /// `["cue-genesis/1", network_id, mint_authority, [[account, amount]...]]`, accounts as
    /// 32-byte keys in ascending byte order. Every ledger entry names it, so entries cannot be
    /// replayed onto another network.
    pub fn id(&self) -> Digest {
        let mut w = Writer::default();
        w.array(4)
            .text("cue-genesis/1")
            .text(&self.network_id)
            .bytes(self.mint_authority.as_bytes())
            .array(self.allocations.len() as u64);
        for (account, amount) in &self.allocations {
            w.array(2).bytes(account.as_bytes()).uint(*amount);
        }
        Digest::of(&w.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    #[test]
    fn toml_round_trips_and_the_id_is_stable() {
        let a = Keypair::from_seed([1; 32]).public();
        let b = Keypair::from_seed([2; 32]).public();
        let genesis = Genesis {
            network_id: "net".into(),
            mint_authority: a,
            allocations: BTreeMap::from([(a, 10), (b, 20)]),
        };
        let parsed = Genesis::from_toml(&genesis.to_toml().unwrap()).unwrap();
        assert_eq!(parsed, genesis);
        assert_eq!(parsed.id(), genesis.id());
        assert_eq!(genesis.total_supply().unwrap(), 30);
        let renamed = Genesis { network_id: "other".into(), ..genesis.clone() };
        assert_ne!(renamed.id(), genesis.id());
    }

    #[test]
    fn bad_genesis_files_are_refused() {
        let a = Keypair::from_seed([1; 32]).peer_id();
        let b = Keypair::from_seed([2; 32]).peer_id();
        let over = format!(
            "network_id = \"n\"\nmint_authority = \"{a}\"\n[allocations]\n\"{a}\" = {max}\n\"{b}\" = 1\n",
            max = MAX_SUPPLY
        );
        assert_eq!(Genesis::from_toml(&over), Err(LedgerError::SupplyOverflow));
        let float = format!("network_id = \"n\"\nmint_authority = \"{a}\"\n[allocations]\n\"{a}\" = 1.5\n");
        assert!(matches!(Genesis::from_toml(&float), Err(LedgerError::InvalidGenesis(_))));
        let unknown = "network_id = \"n\"\nmint_authority = \"12D3KooWnope\"\n";
        assert!(matches!(Genesis::from_toml(unknown), Err(LedgerError::InvalidGenesis(_))));
    }
}
