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
mod jobstream;
mod ledger;
mod provide;
mod provider;
mod reputation;
mod serve;
mod submit;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use blobs::{BLOB_PROTOCOL, TransferError};
pub use components::{FetchReport, PublishReport};
pub use discovery::ProviderView;
pub use jobstream::JOB_PROTOCOL;
pub use ledger::{EntryView, LEDGER_TOPIC, LEDGER_TOPIC_V1};
pub use provide::{DEFAULT_PAY_GRACE, FaultInjection};
pub use provider::ProviderSettings;
pub use reputation::REPUTATION_TOPIC;
pub use submit::{Attempt, SubmitOptions, SubmitReport};

use crate::crypto::{Keypair, PeerId};
use crate::datadir::DataDir;
use crate::ledger::Genesis;
use crate::market::{ReputationBook, ReputationLimits, ResourceManifest};
use crate::net::{self, Multiaddr, NetConfig, Refusals};
use crate::protocol::Signed;
use crate::sandbox::{LoadedComponent, Sandbox, SandboxConfig};
use crate::store::{BlobStore, LedgerStore, Registry, StoreError};

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
    /// The network's genesis: needed the first time the data dir's ledger is opened. Without
    /// one and without a ledger in the data dir, the node runs without a ledger.
    pub genesis: Option<Genesis>,
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
            genesis: None,
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
    /// The event log and ledger, when the node has a genesis.
    ledger: Option<Arc<LedgerStore>>,
    /// This node's current signed manifest, when it provides.
    manifest: RwLock<Option<Signed<ResourceManifest>>>,
    /// Addresses the node listens on, `/p2p/<id>` included.
    listen_addrs: RwLock<Vec<Multiaddr>>,
    /// Refused input, counted (shared with the network task).
    refusals: Arc<Refusals>,
    /// The jobs this node runs for others, when it provides.
    provider_jobs: Option<provide::ProviderJobs>,
    /// What this node and the peers it trusts have attested about others.
    reputation: std::sync::Mutex<ReputationBook>,
    /// Job streams kept open after paid jobs, for the next job to the same provider.
    idle_job_streams: submit::IdleStreams,
    /// Wakes the attester: a verdict of this node is owed an attestation.
    attesting: tokio::sync::Notify,
    /// Ledger entries stored here and waiting to be gossiped together.
    outbox: ledger::Outbox,
    /// Gossiped attestations counted in the book and waiting to be logged together.
    unlogged: std::sync::Mutex<Vec<crate::store::ProtocolEvent>>,
    /// Components loaded in the sandbox, newest last (at most [`LOADED_CACHE`]).
    loaded: std::sync::Mutex<std::collections::VecDeque<(crate::crypto::Digest, Arc<LoadedComponent>)>>,
    /// Providers' checked manifests, for jobs sent to a named provider.
    recent_manifests: std::sync::Mutex<std::collections::HashMap<PeerId, (std::time::Instant, ProviderView)>>,
    /// When each name was last looked up on the network (at most [`NAMES_CHECKED`] names).
    names_checked: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// Loaded components kept warm per node.
const LOADED_CACHE: usize = 32;
/// Names whose last network lookup time is remembered.
const NAMES_CHECKED: usize = 1024;
/// A name looked up this recently is resolved from the registry alone.
const NAME_RECHECK: Duration = Duration::from_secs(30);

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
        let keypair_public = keypair.public();
        let mut sandbox_config = config.sandbox.clone();
        sandbox_config.cache_dir.get_or_insert_with(|| data_dir.code_cache());
        let sandbox = Sandbox::new(sandbox_config).map_err(|e| setup("sandbox", &e))?;
        let registry = Registry::open(&data_dir.registry()).map_err(|e| setup("registry", &e))?;
        let blobs = BlobStore::open(&data_dir.blobs(), sandbox.config().max_component_bytes as u64)
            .map_err(|e| setup("blob store", &e))?;
        let ledger = match LedgerStore::open(&data_dir.ledger(), config.genesis.clone()) {
            Ok(store) => Some(Arc::new(store)),
            Err(StoreError::NoGenesis) => {
                tracing::warn!("no genesis given and no ledger in the data dir: running without a ledger");
                None
            }
            Err(e) => return Err(setup("ledger", &e)),
        };
        let validator = Arc::new(serve::Validator);
        let net_config = NetConfig::new(config.listen.clone(), config.bootstrap.clone(), validator);
        let refusals = net_config.refusals.clone();
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
            ledger,
            manifest: RwLock::new(None),
            listen_addrs: RwLock::new(Vec::new()),
            refusals,
            provider_jobs: config.provide.as_ref().map(provide::ProviderJobs::new),
            loaded: Default::default(),
            recent_manifests: Default::default(),
            names_checked: Default::default(),
            unlogged: Default::default(),
            attesting: tokio::sync::Notify::new(),
            outbox: ledger::Outbox::default(),
            idle_job_streams: Default::default(),
            reputation: std::sync::Mutex::new(ReputationBook::new(
                keypair_public,
                ReputationLimits::default(),
            )),
        });
        shared.wait_for_listeners(config.listen.len()).await;
        shared.client.subscribe(COMPONENTS_TOPIC).await?;
        shared.client.subscribe(REPUTATION_TOPIC).await?;
        if shared.ledger.is_some() {
            shared.client.subscribe(LEDGER_TOPIC).await?;
            shared.client.subscribe(ledger::LEDGER_TOPIC_V1).await?;
        }
        let kicks = Arc::new(tokio::sync::Notify::new());
        tasks.push(tokio::spawn(serve::dispatch(shared.clone(), events, kicks.clone())));
        tasks.push(tokio::spawn(serve::serve_blobs(shared.clone(), shutdown_rx.clone())?));
        if let Some(settings) = config.provide.clone() {
            tasks.push(provider::start(&shared, settings, shutdown_rx.clone()).await?);
            provide::fail_unfinished(&shared).await;
            tasks.push(tokio::spawn(provide::serve_jobs(shared.clone(), shutdown_rx.clone())?));
            tasks.push(tokio::spawn(provide::watch_payments(shared.clone(), shutdown_rx.clone())));
        }
        tasks.push(tokio::spawn(serve::announcer(shared.clone(), kicks, shutdown_rx.clone())));
        tasks.push(tokio::spawn(reputation::run_attester(shared.clone(), shutdown_rx.clone())));
        tasks.push(tokio::spawn(ledger::run_gossiper(shared.clone(), shutdown_rx.clone())));
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

    /// Stops every task and waits for them (at most `grace` each). Ledger entries waiting to
    /// be gossiped are published first, while the network still runs.
    pub async fn shutdown(self) {
        ledger::flush_before_stop(&self.shared).await;
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

    /// How much refused input of each kind this node has seen since it started.
    pub fn refusals(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.shared.refusals.snapshot()
    }

    /// This node's view of a peer's reputation, in `[0, 1]`.
    pub fn reputation(&self, peer: PeerId) -> f64 {
        self.shared.reputation_of(&peer.public_key())
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

    /// Runs a job on the network: discover, negotiate, stream, check the receipt, pay,
    /// attest; retries elsewhere and replicates as asked. `progress(done, total)` reports the
    /// guest's progress.
    pub async fn submit(
        &self,
        options: SubmitOptions,
        progress: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<SubmitReport, NodeError> {
        submit::submit(&self.shared, options, Arc::new(progress)).await
    }

    /// The latest `limit` contracts this node is a party to, most recently changed first.
    pub async fn jobs(&self, limit: u32) -> Result<Vec<serde_json::Value>, NodeError> {
        let store = ledger::store(&self.shared)?.clone();
        let rows = tokio::task::spawn_blocking(move || store.reader()?.contracts(limit))
            .await
            .map_err(|e| NodeError::Store(e.to_string()))?
            .map_err(|e| NodeError::Store(e.to_string()))?;
        Ok(rows.iter().map(contract_json).collect())
    }

    /// One job: its contracts and every protocol event of it, in log order.
    pub async fn job(&self, job: crate::protocol::JobId) -> Result<serde_json::Value, NodeError> {
        let store = ledger::store(&self.shared)?.clone();
        let (rows, events) = tokio::task::spawn_blocking(move || {
            let reader = store.reader()?;
            Ok::<_, StoreError>((reader.contracts_of_job(&job)?, reader.job_events(&job)?))
        })
        .await
        .map_err(|e| NodeError::Store(e.to_string()))?
        .map_err(|e| NodeError::Store(e.to_string()))?;
        if rows.is_empty() && events.is_empty() {
            return Err(NodeError::NotFound(format!("no job {job} here")));
        }
        let events: Vec<serde_json::Value> = events
            .iter()
            .map(|(kind, hash, bytes)| serde_json::json!({"kind": kind, "hash": hash.to_string(), "bytes": bytes.len()}))
            .collect();
        Ok(serde_json::json!({
            "job": job.to_string(),
            "contracts": rows.iter().map(contract_json).collect::<Vec<_>>(),
            "events": events,
        }))
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

/// The wallet: balances, history, transfers and mints on this node's ledger, gossiped to the
/// network.
impl NodeHandle {
    /// An account's balance and whether it is flagged for equivocation.
    pub async fn balance(&self, account: PeerId) -> Result<(u64, bool), NodeError> {
        ledger::balance(&self.shared, account.public_key()).await
    }

    /// An account's latest `limit` entries, newest first.
    pub async fn history(&self, account: PeerId, limit: u32) -> Result<Vec<EntryView>, NodeError> {
        ledger::history(&self.shared, account.public_key(), limit).await
    }

    /// Pays `amount` to `to` from this node's account (`reference`: `contract:<hash>` or
    /// `receipt:<hash>`), and gossips the entry.
    pub async fn transfer(
        &self,
        to: PeerId,
        amount: u64,
        reference: Option<&str>,
    ) -> Result<EntryView, NodeError> {
        let reference = reference.map(ledger::parse_reference).transpose()?;
        ledger::author(&self.shared, ledger::transfer_draft(to, amount, reference)).await
    }

    /// Mints `amount` to `to` (this node must be the mint authority), and gossips the entry.
    pub async fn mint(&self, to: PeerId, amount: u64) -> Result<EntryView, NodeError> {
        ledger::author(&self.shared, ledger::mint_draft(to, amount)).await
    }

    /// Verifies and applies a signed ledger entry, and gossips it.
    pub async fn import(&self, bytes: Vec<u8>, historical: bool) -> Result<EntryView, NodeError> {
        ledger::import(&self.shared, bytes, historical).await
    }
}

impl Shared {
    /// The component, if it is loaded in the sandbox now (see [`Shared::load`]).
    fn loaded_now(&self, sha256: &crate::crypto::Digest) -> Option<Arc<LoadedComponent>> {
        let loaded = self.loaded.lock().expect("loaded lock");
        loaded.iter().find(|(d, _)| d == sha256).map(|(_, loaded)| loaded.clone())
    }

    /// The component with this hash, loaded (verified, compiled or from the code cache) — from
    /// the warm cache when it was loaded recently.
    async fn load(
        &self,
        sha256: crate::crypto::Digest,
    ) -> Result<Arc<LoadedComponent>, crate::sandbox::JobError> {
        use crate::sandbox::{FailureKind, JobError};
        if let Some(loaded) = self.loaded_now(&sha256) {
            return Ok(loaded);
        }
        let bytes = self
            .blobs
            .get(&sha256)
            .map_err(|e| JobError::new(FailureKind::InvalidComponent, e.to_string()))?;
        let bytes =
            bytes.ok_or_else(|| JobError::new(FailureKind::InvalidComponent, "the component is not here"))?;
        let sandbox = self.sandbox.clone();
        let loaded = tokio::task::spawn_blocking(move || sandbox.load(&bytes))
            .await
            .map_err(|e| JobError::new(FailureKind::InvalidComponent, format!("loading task: {e}")))??;
        let loaded = Arc::new(loaded);
        let mut cache = self.loaded.lock().expect("loaded lock");
        cache.push_back((sha256, loaded.clone()));
        while cache.len() > LOADED_CACHE {
            cache.pop_front();
        }
        Ok(loaded)
    }

    /// Whether `name` should be looked up on the network now (and notes that it is).
    fn name_needs_lookup(&self, name: &str) -> bool {
        let mut checked = self.names_checked.lock().expect("names lock");
        if checked.get(name).is_some_and(|at| at.elapsed() < NAME_RECHECK) {
            return false;
        }
        if checked.len() >= NAMES_CHECKED {
            checked.clear();
        }
        checked.insert(name.to_owned(), std::time::Instant::now());
        true
    }

    /// A peer's reputation here: 0 for an account the ledger flagged for equivocation, else
    /// from the attestations this node holds (see `market::reputation`).
    fn reputation_of(&self, peer: &crate::crypto::PublicKey) -> f64 {
        if self.ledger.as_ref().is_some_and(|ledger| ledger.is_flagged(peer)) {
            return 0.0;
        }
        self.reputation
            .lock()
            .map(|book| book.reputation(peer, now_ms()))
            .unwrap_or(crate::market::NEUTRAL_REPUTATION)
    }

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

/// A contract row as the API and `cue jobs --json` show it.
fn contract_json(row: &crate::store::ContractRow) -> serde_json::Value {
    serde_json::json!({
        "contract": row.contract.to_string(),
        "job": row.job.to_string(),
        "role": row.role,
        "peer": row.peer.peer_id().to_string(),
        "state": row.state,
        "request": row.request.to_string(),
        "receipt": row.receipt.map(|d| d.to_string()),
        "payment": row.payment.map(|d| d.to_string()),
        "offer": row.offer,
        "price": row.price,
        "pay_by_ms": row.pay_by_ms,
        "created_ms": row.created_ms,
        "updated_ms": row.updated_ms,
        "detail": row.detail,
    })
}

/// Resolves when the shutdown flag turns true (or its sender is gone).
async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Until shutdown: runs `drain` while it answers that more may be waiting (at start too), then
/// waits to be woken by `wake`, waits `gather` for more work to come, and drains again; at
/// shutdown, drains once more. What the attester and the ledger gossiper do with their queues.
async fn drain_in_batches<F: Future<Output = bool>>(
    shutdown: watch::Receiver<bool>,
    wake: &tokio::sync::Notify,
    gather: Duration,
    mut drain: impl FnMut() -> F,
) {
    loop {
        while drain().await {}
        tokio::select! {
            () = wait_for(shutdown.clone()) => {
                while drain().await {}
                return;
            }
            () = wake.notified() => {}
        }
        tokio::select! {
            () = wait_for(shutdown.clone()) => {}
            () = tokio::time::sleep(gather) => {}
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
