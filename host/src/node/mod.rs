//! The node: [`Node::start`] builds the identity, the stores, the sandbox and the network,
//! spawns the node's tasks, and [`Node::shutdown`] stops them; a [`NodeHandle`] gives the API
//! and the tests the node's operations. This file is only wiring.
//!
//! # Rooms, bottom-up (a room imports only from rooms above it in this list)
//!
//! | room | what it holds |
//! |---|---|
//! | `config`, `error`, `topics` | what a node is asked to be; [`NodeError`]; gossip topics |
//! | `jobstream`, `blobs` | the wire: `/cue-job` frames, `/cue-blob` transfers |
//! | `journal` | records committed together over the ledger store; every role writes through it |
//! | `components`, `advert`, `reputation`, `outbox`, `discovery`, `wallet` | what the roles share: loaded components and names; this provider's signed manifest; reputation and owed verdicts; ledger entries waiting to be gossiped; providers found; the account |
//! | `provider/` | the provider's side of a contract: `negotiate` (accept or reject), `run` (the job stream), `payment` |
//! | `consumer/` | the consumer's side: `choose`, `attempt` (the job stream), `settle` (vote, pay, punish), `idle` streams |
//! | `js` | JavaScript jobs: the built-in runtime published as `js@<version>`, the call checked, the report read as the function's value |
//! | `gossip/` | what peers gossip to this node: ledger entries, attestations (and the attester), component manifests |
//! | `providing` | providing started and stopped while the node runs |
//! | `dispatch`, `announce`, `handle`, `handle_dashboard` | network events routed to the rooms; announcements kept alive; the operations (those the dashboard adds apart) |
//!
//! # Tasks
//!
//! Every task ends on the shutdown signal [`Node::shutdown`] sends (or when the network's
//! event channel closes); shutdown waits at most 10 s for each, then aborts it:
//! 1. the network event loop ([`net::EventLoop`]);
//! 2. the dispatcher (`dispatch::run`): answers `/cue-rpc`, hands gossip to `gossip/`; ends
//!    when the event loop closes its channel;
//! 3. the blob server (`blobs::serve_all`): `/cue-blob` streams, at most `MAX_UPLOADS` at once;
//! 4. the announcer (`announce::run`): the manifest, blobs and names, renewed;
//! 5. the attester (`gossip::attestations::run_attester`): signs owed verdicts in sets; at
//!    shutdown, what is owed by then;
//! 6. the ledger gossiper (`Outbox::run`): publishes waiting entries; the outbox is flushed
//!    before the signal is sent;
//! 7. with `--provide`, the manifest refresher (`advert`): re-measures and re-signs (ended
//!    early when providing is stopped from the API, `providing`);
//! 8. with `--provide`, the job server (`provider::serve_jobs`): `/cue-job` streams, at most
//!    `MAX_JOB_STREAMS` at once;
//! 9. with `--provide`, the payment watcher (`provider::watch_payments`): payments by gossip,
//!    deadlines, unstarted jobs, every 250 ms;
//! 10. the pruner (`journal::run_pruner`): prunes the log at start and every 10 min.
//!
//! Tasks 7 to 9 are also spawned when providing is started from the API (`providing`).
//!
//! Requests, gossip messages and streams are handled in short tasks of their own, each kind
//! bounded by a semaphore (see `dispatch`); the stores close when the last reference drops.
//!
//! # Locks
//!
//! State lives in the room that changes it, behind private fields. One policy for a lock a
//! panicking task poisoned: [`lock`] takes it anyway. Every structure behind a node's locks is
//! a bounded cache, queue or set that is whole between statements (no invariant spans a call
//! that could panic), and one panicked task must not stop a node from serving.

mod advert;
mod announce;
mod blobs;
mod components;
mod config;
mod consumer;
mod discovery;
mod dispatch;
mod error;
mod gossip;
mod handle;
mod handle_dashboard;
mod jobstream;
mod journal;
mod js;
mod outbox;
mod provider;
mod providing;
mod quota;
mod reputation;
mod topics;
mod wallet;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use blobs::{BLOB_PROTOCOL, MAX_UPLOADS, TransferError};
pub(crate) use blobs::{parse_size, parse_status};
pub use components::{FetchReport, PublishReport};
pub use config::{CrashPoint, DEFAULT_PAY_GRACE, FaultInjection, NodeConfig, ProviderSettings};
pub use consumer::{Attempt, AttemptOutcome, DEFAULT_AUDIT_FUEL, SubmitOptions, SubmitReport};
pub use discovery::ProviderView;
pub use error::{NodeError, UnfitProvider};
pub use handle::{BalanceView, ContractView, JobEventView, JobView, NodeHandle};
pub use handle_dashboard::{ComponentView, MAX_LISTED_COMPONENTS, NetworkView};
pub(crate) use jobstream::{
    Frame, FrameError, MAX_FRAME_BYTES, MAX_START_FRAME_BYTES, decode_frame, encode_frame,
};
pub use jobstream::{JOB_PROTOCOL, WRITE_STALL};
pub use providing::ProvideOptions;
pub use topics::{COMPONENTS_TOPIC, EQUIVOCATIONS_TOPIC, LEDGER_TOPIC, REPUTATION_TOPIC};
pub use wallet::EntryView;

use crate::crypto::Keypair;
use crate::datadir::DataDir;
use crate::market::ReputationLimits;
use crate::net::{self, Multiaddr, NetConfig, NetworkTag, Refusals};
use crate::sandbox::Sandbox;
use crate::store::{LedgerStore, StoreError};

/// Takes a lock, poisoned or not (the node's one policy, see the module docs).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every task of a node holds: the handles of the layers below (identity, network,
/// journal) and each room's state, owned by that room (private fields, methods).
struct Shared {
    keypair: Arc<Keypair>,
    data_dir: DataDir,
    client: net::Client,
    /// Addresses the node listens on, `/p2p/<id>` included (known before `Shared` is built).
    listen_addrs: Vec<Multiaddr>,
    /// Refused input, counted (shared with the network task).
    refusals: Arc<Refusals>,
    journal: journal::Journal,
    components: components::Components,
    /// This node's signed manifest, when it provides.
    advert: advert::Advert,
    reputation: reputation::Reputation,
    outbox: outbox::Outbox,
    discovery: discovery::Discovery,
    /// The provider's side of its contracts, once it provides (set at start with `--provide`,
    /// or by the first start from the API; never unset).
    provider: std::sync::OnceLock<provider::Provider>,
    /// Providing started and stopped while running (`providing`).
    providing: providing::Providing,
    /// The shutdown signal, for tasks spawned after the start (`providing`).
    stopping: watch::Receiver<bool>,
    consumer: consumer::Consumer,
    unlogged: gossip::UnloggedAttestations,
    /// Where to stop the process dead, for crash tests (see [`CrashPoint`]); `None` otherwise.
    crash_at: Option<CrashPoint>,
}

impl Shared {
    /// Stops the process dead (`abort`: no destructor, no flush) when the node was asked to
    /// crash at `point` — a testing aid, see [`CrashPoint`].
    fn crash_point(&self, point: CrashPoint) {
        if self.crash_at == Some(point) {
            eprintln!("crash point {point:?} reached: aborting");
            std::process::abort();
        }
    }
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
        let mut sandbox_config = config.sandbox.clone();
        sandbox_config.cache_dir.get_or_insert_with(|| data_dir.code_cache());
        let sandbox = Sandbox::new(sandbox_config).map_err(|e| setup("sandbox", &e))?;
        let pool = sandbox.config().max_concurrent_jobs as usize;
        let ledger = open_ledger(&data_dir, &config).map_err(|e| setup("ledger", &e))?;
        let caps = (sandbox.config().max_component_bytes as u64, config.max_blob_store_bytes);
        let (registry, blobs) = components::open_stores(&data_dir, keypair.public(), ledger.as_ref(), caps)?;
        let genesis = ledger.as_ref().map(|store| store.genesis().id());
        let validator =
            Arc::new(dispatch::Validator { genesis: genesis.unwrap_or(crate::market::NO_NETWORK) });
        let mut net_config = NetConfig::new(config.listen.clone(), config.bootstrap.clone(), validator);
        net_config.network = NetworkTag::of(genesis.as_ref());
        let refusals = net_config.refusals.clone();
        let (client, events, event_loop) = net::new(&keypair, net_config)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(event_loop.run(wait_for(shutdown_rx.clone())))];
        let listen_addrs = wait_for_listeners(&client, config.listen.len()).await;
        let journal = journal::Journal::new(ledger);
        let shared = Arc::new(Shared {
            listen_addrs,
            refusals,
            components: components::Components::new(Arc::new(sandbox), registry, blobs),
            advert: advert::Advert::default(),
            reputation: reputation::Reputation::new(
                keypair.public(),
                ReputationLimits::default(),
                journal.clone(),
            ),
            outbox: outbox::Outbox::new(client.clone()),
            discovery: discovery::Discovery::default(),
            provider: config
                .provide
                .as_ref()
                .map(|settings| provider::Provider::new(settings, pool))
                .map_or_else(std::sync::OnceLock::new, std::sync::OnceLock::from),
            providing: providing::Providing::new(config.provide.clone()),
            stopping: shutdown_rx.clone(),
            consumer: consumer::Consumer::default(),
            unlogged: gossip::UnloggedAttestations::default(),
            crash_at: config.crash_at,
            journal,
            keypair,
            data_dir,
            client,
        });
        gossip::subscribe(&shared).await?;
        tasks.extend(spawn_tasks(&shared, events, config.provide.clone(), shutdown_rx).await?);
        let node = Node { shared, shutdown, tasks };
        tracing::info!(peer = %node.shared.keypair.peer_id(), "node started");
        Ok(node)
    }

    /// A handle for the API and for tests: the node's operations.
    pub fn handle(&self) -> NodeHandle {
        NodeHandle::new(self.shared.clone())
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> crate::crypto::PeerId {
        self.shared.keypair.peer_id()
    }

    /// The network this node belongs to (its genesis's tag, or the open network without one).
    pub fn network(&self) -> NetworkTag {
        NetworkTag::of(self.shared.journal.genesis_id().as_ref())
    }

    /// The addresses the node listens on, `/p2p/<peer id>` included.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared.listen_addrs.clone()
    }

    /// Stops every task and waits for them (at most 10 s each). Ledger entries waiting to be
    /// gossiped are published first, while the network still runs.
    pub async fn shutdown(self) {
        self.shared.outbox.flush_before_stop().await;
        let _ = self.shutdown.send(true);
        for task in self.tasks.into_iter().chain(self.shared.providing.take_tasks()) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task).await.is_err() {
                abort.abort();
            }
        }
        tracing::info!("node stopped");
    }
}

/// Spawns the node's tasks but the network loop (see the module docs), in order: the dispatcher
/// and the blob server, the provider's (its manifest measured or reused, its unfinished
/// contracts failed and its request window restored before it serves jobs), then the
/// announcer, the attester, the pruner and the ledger gossiper.
async fn spawn_tasks(
    shared: &Arc<Shared>,
    events: tokio::sync::mpsc::Receiver<net::NetEvent>,
    provide: Option<ProviderSettings>,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, NodeError> {
    let connected = Arc::new(tokio::sync::Notify::new());
    let mut tasks = vec![
        tokio::spawn(dispatch::run(shared.clone(), events, connected.clone())),
        tokio::spawn(blobs::serve_all(shared.clone(), shutdown.clone())?),
    ];
    if let Some(settings) = provide {
        shared.providing.started_with(advert::start(shared, settings, shutdown.clone()).await?);
        provider::fail_unfinished(shared).await;
        provider::restore_request_window(shared).await;
        tasks.push(tokio::spawn(provider::serve_jobs(shared.clone(), shutdown.clone())?));
        tasks.push(tokio::spawn(provider::watch_payments(shared.clone(), shutdown.clone())));
    }
    tasks.push(tokio::spawn(announce::run(shared.clone(), connected, shutdown.clone())));
    tasks.push(tokio::spawn(gossip::attestations::run_attester(shared.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(journal::run_pruner(shared.journal.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(consumer::run_refunder(shared.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(gossip::equivocations::run_spreader(shared.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(outbox::run_gossiper(shared.clone(), shutdown)));
    Ok(tasks)
}

/// The data dir's ledger, created from the genesis the first time; `None` without either.
fn open_ledger(data_dir: &DataDir, config: &NodeConfig) -> Result<Option<Arc<LedgerStore>>, StoreError> {
    match LedgerStore::open(&data_dir.ledger(), config.genesis.clone()) {
        Ok(store) => Ok(Some(Arc::new(store))),
        Err(StoreError::NoGenesis) => {
            tracing::warn!("no genesis given and no ledger in the data dir: running without a ledger");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The addresses the network listens on once `wanted` listeners are up (at most ~2 s).
async fn wait_for_listeners(client: &net::Client, wanted: usize) -> Vec<Multiaddr> {
    let mut addrs = Vec::new();
    for _ in 0..100 {
        addrs = client.listen_addrs().await.unwrap_or_default();
        if addrs.len() >= wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    addrs
}

/// The next inbound stream, or `None` at shutdown or when the network has stopped.
async fn next_stream(
    incoming: &mut net::Incoming,
    shutdown: &watch::Receiver<bool>,
) -> Option<(crate::crypto::PeerId, net::Stream)> {
    tokio::select! {
        () = wait_for(shutdown.clone()) => None,
        next = incoming.next() => next,
    }
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
