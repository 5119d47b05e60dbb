//! The composition root: [`Node::start`] builds the identity, the stores, the sandbox and the
//! network, spawns the node's tasks and the local API, and [`Node::shutdown`] stops them.
//!
//! Tasks, each with a bounded input and a documented end:
//! - the network [`EventLoop`](crate::net::EventLoop), until shutdown;
//! - the dispatcher: answers `/cue-rpc` requests and checks gossip (stops with the network);
//! - the blob server: answers `/cue-blob/1.0.0` streams, at most [`MAX_UPLOADS`] at once
//!   (more are answered "busy");
//! - with `--provide`, the provider: measures the machine, signs and announces the manifest,
//!   and re-signs it before it expires;
//! - the announcer: re-announces held blobs and names after a restart;
//!
//! The local HTTP API is not part of the node: `cue node` serves it beside the node
//! ([`crate::api`]) through a [`NodeHandle`].
//!
//! Shutdown: the provider and announcer stop, the network loop ends (closing connections),
//! the stores close when the last reference drops.

mod blobs;
mod components;
mod discovery;
mod provider;
mod serve;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use blobs::{BLOB_PROTOCOL, TransferError};
pub use components::{FetchReport, PublishReport};
pub use discovery::ProviderView;
pub use provider::ProviderSettings;

use crate::crypto::{Keypair, PeerId};
use crate::datadir::DataDir;
use crate::market::ResourceManifest;
use crate::net::{self, Multiaddr, NetConfig};
use crate::protocol::Signed;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::store::{BlobStore, Registry};

/// Blob transfers served at once; more requests are answered "busy".
pub const MAX_UPLOADS: usize = 16;
/// Gossip topic of signed component manifests.
pub const COMPONENTS_TOPIC: &str = "cue/components/1";

/// What a node is asked to be.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Keys, stores and caches.
    pub data_dir: DataDir,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to join through.
    pub bootstrap: Vec<Multiaddr>,
    /// Sell compute: measure, sign and announce a manifest.
    pub provide: Option<ProviderSettings>,
    /// The sandbox's settings; its code cache defaults to the data dir's.
    pub sandbox: SandboxConfig,
}

impl NodeConfig {
    /// A node on `data_dir` listening on an ephemeral loopback TCP port, joining through
    /// `bootstrap`, not providing, with the default sandbox.
    pub fn loopback(data_dir: DataDir, bootstrap: Vec<Multiaddr>) -> NodeConfig {
        let listen = "/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr");
        NodeConfig {
            data_dir,
            listen: vec![listen],
            bootstrap,
            provide: None,
            sandbox: SandboxConfig::default(),
        }
    }
}

/// Why a node could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Setting up a part of the node failed.
    #[error("cannot start the node: {0}")]
    Setup(String),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] net::NetError),
    /// The request was refused: bad input.
    #[error("{0}")]
    Invalid(String),
    /// Nothing matched.
    #[error("{0}")]
    NotFound(String),
    /// A transfer failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

/// What every task of a node shares.
struct Shared {
    keypair: Arc<Keypair>,
    data_dir: DataDir,
    client: net::Client,
    sandbox: Arc<Sandbox>,
    registry: Registry,
    blobs: BlobStore,
    /// This node's current signed manifest, when it provides.
    manifest: RwLock<Option<Signed<ResourceManifest>>>,
    /// Addresses the node listens on, `/p2p/<id>` included.
    listen_addrs: RwLock<Vec<Multiaddr>>,
}

/// A running node.
pub struct Node {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Starts a node: opens (or creates) its identity and stores, joins the network, spawns its
    /// tasks. Must be called inside a tokio runtime.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let setup = |what: &str, e: &dyn std::fmt::Display| NodeError::Setup(format!("{what}: {e}"));
        let data_dir = config.data_dir.clone();
        let (keypair, _) =
            Keypair::load_or_create(&data_dir.identity_key()).map_err(|e| setup("identity", &e))?;
        let keypair = Arc::new(keypair);
        let sandbox = Sandbox::new(SandboxConfig {
            cache_dir: config.sandbox.cache_dir.clone().or_else(|| Some(data_dir.code_cache())),
            ..config.sandbox.clone()
        })
        .map_err(|e| setup("sandbox", &e))?;
        let registry = Registry::open(&data_dir.registry()).map_err(|e| setup("registry", &e))?;
        let blobs = BlobStore::open(&data_dir.blobs(), sandbox.config().max_component_bytes as u64)
            .map_err(|e| setup("blob store", &e))?;
        let validator = Arc::new(serve::Validator);
        let net_config = NetConfig::new(config.listen.clone(), config.bootstrap.clone(), validator);
        let (client, events, event_loop) = net::new(&keypair, net_config)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(event_loop.run(wait_for(shutdown_rx.clone())))];
        let shared = Arc::new(Shared {
            keypair,
            data_dir,
            client,
            sandbox: Arc::new(sandbox),
            registry,
            blobs,
            manifest: RwLock::new(None),
            listen_addrs: RwLock::new(Vec::new()),
        });
        shared.wait_for_listeners(config.listen.len()).await;
        shared.client.subscribe(COMPONENTS_TOPIC).await?;
        let kicks = Arc::new(tokio::sync::Notify::new());
        tasks.push(tokio::spawn(serve::dispatch(shared.clone(), events, kicks.clone())));
        tasks.push(tokio::spawn(serve::serve_blobs(shared.clone(), shutdown_rx.clone())?));
        if let Some(settings) = config.provide.clone() {
            tasks.push(provider::start(&shared, settings, shutdown_rx.clone()).await?);
        }
        tasks.push(tokio::spawn(serve::announcer(shared.clone(), kicks, shutdown_rx.clone())));
        let node = Node { shared, shutdown, tasks };
        tracing::info!(peer = %node.peer_id(), "node started");
        Ok(node)
    }

    /// A handle for the API and for tests: the node's operations.
    pub fn handle(&self) -> NodeHandle {
        NodeHandle { shared: self.shared.clone() }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.keypair.peer_id()
    }

    /// The addresses the node listens on, `/p2p/<peer id>` included.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared.listen_addrs.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// Stops every task and waits for them (at most `grace` each).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task).await.is_err() {
                abort.abort();
            }
        }
        tracing::info!("node stopped");
    }
}

/// The node's operations, shared with the API and tests.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
}

impl NodeHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.keypair.peer_id()
    }

    /// The addresses the node listens on.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared.listen_addrs.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.shared.data_dir.root().to_path_buf()
    }

    /// This node's signed manifest, when it provides.
    pub fn manifest(&self) -> Option<Signed<ResourceManifest>> {
        self.shared.manifest.read().ok().and_then(|m| m.clone())
    }

    /// Peers connected now.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NodeError> {
        Ok(self.shared.client.connected_peers().await?)
    }

    /// Discovers providers, checks their manifests and ranks them (see
    /// [`market::score`](crate::market::score)).
    pub async fn providers(&self) -> Result<Vec<ProviderView>, NodeError> {
        discovery::providers(&self.shared).await
    }

    /// Verifies, signs, stores and announces a component.
    pub async fn publish(
        &self,
        bytes: Vec<u8>,
        name: &str,
        version: &str,
    ) -> Result<PublishReport, NodeError> {
        components::publish(&self.shared, bytes, name, version).await
    }

    /// Resolves a reference and fetches the component's bytes from a peer that has them.
    pub async fn fetch(
        &self,
        reference: &str,
        progress: impl FnMut(u64, u64) + Send,
    ) -> Result<FetchReport, NodeError> {
        components::fetch(&self.shared, reference, progress).await
    }
}

impl Shared {
    async fn wait_for_listeners(&self, wanted: usize) {
        for _ in 0..100 {
            if let Ok(addrs) = self.client.listen_addrs().await
                && addrs.len() >= wanted
            {
                *self.listen_addrs.write().expect("listen address lock") = addrs;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Resolves when the shutdown flag turns true (or its sender is gone).
async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
