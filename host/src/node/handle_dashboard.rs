//! The operations the dashboard adds to [`NodeHandle`]: the components this node knows by
//! name, and providing started and stopped while the node runs.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::providing::{self, ProvideOptions};
use super::{NodeError, NodeHandle};
use crate::market::ResourceManifest;
use crate::protocol::Signed;

/// The most component versions [`NodeHandle::components`] lists.
pub const MAX_LISTED_COMPONENTS: usize = 1_000;

/// A published component this node knows, as `GET /v1/components` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentView {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its WIT world, as `cue inspect` prints it (the Submit view builds its form from it).
    pub world: String,
    /// Its publisher's peer id.
    pub publisher: String,
}

/// The network of this node's ledger, as `GET /v1/network` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    /// The genesis id, hex; `None` for a node without a ledger.
    pub genesis: Option<String>,
    /// The mint authority's peer id.
    pub mint_authority: Option<String>,
    /// Whether this node is the mint authority (the Wallet view offers minting then).
    pub is_mint_authority: bool,
}

impl NodeHandle {
    /// The network of this node's ledger and its mint authority.
    pub fn network(&self) -> NetworkView {
        let genesis = self.shared.journal.store().ok().map(|store| store.genesis().clone());
        let authority = genesis.as_ref().map(|genesis| genesis.mint_authority);
        NetworkView {
            genesis: genesis.as_ref().map(|genesis| genesis.id().to_string()),
            mint_authority: authority.map(|key| key.peer_id().to_string()),
            is_mint_authority: authority.is_some_and(|key| key == self.shared.keypair.public()),
        }
    }

    /// The component versions this node knows by name (published here or heard by gossip), by
    /// name then version; at most [`MAX_LISTED_COMPONENTS`].
    pub async fn components(&self) -> Result<Vec<ComponentView>, NodeError> {
        let shared = self.shared.clone();
        let listed = tokio::task::spawn_blocking(move || {
            let registry = shared.components.registry();
            let mut listed = Vec::new();
            for pinned in registry.names()? {
                for manifest in registry.versions(&pinned.name)? {
                    if listed.len() == MAX_LISTED_COMPONENTS {
                        return Ok(listed);
                    }
                    let body = manifest.body();
                    listed.push(ComponentView {
                        name: body.name.clone(),
                        version: body.version.to_string(),
                        sha256: body.sha256.to_string(),
                        size: body.size,
                        world: body.world.clone(),
                        publisher: body.publisher.peer_id().to_string(),
                    });
                }
            }
            Ok::<_, NodeError>(listed)
        })
        .await
        .map_err(|e| NodeError::task("components", e))??;
        Ok(listed)
    }

    /// Starts providing, or restarts it with a new policy, without restarting the node:
    /// measures this machine (`progress(runs done, runs)`), signs, installs and announces the
    /// manifest; answers it. Needs a ledger (a provider is paid).
    pub async fn provide(
        &self,
        options: ProvideOptions,
        progress: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<Signed<ResourceManifest>, NodeError> {
        providing::start(&self.shared, options, Arc::new(progress)).await
    }

    /// Stops providing: the manifest is withdrawn, new requests are refused, contracts already
    /// made are served and paid. Answers whether it was providing.
    pub async fn stop_providing(&self) -> bool {
        providing::stop(&self.shared).await
    }
}
