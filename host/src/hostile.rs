//! A hostile peer, for chaos runs (`cue debug hostile`, hidden from `--help`; `cargo xtask
//! chaos` runs one): a key of its own on the bare network layer — as the attackers of
//! `tests/all/network_hostile.rs` and `tests/all/strangers.rs` are — that breaks the rules
//! against the nodes it is given, at a steady rate, until its time is up:
//! - **request floods** on `/cue-rpc`: garbage where a compute request goes, signed requests
//!   for components nobody has (each a fetch the provider may try), the same request replayed,
//!   forged payments (a signature broken), chains asked for from the start;
//! - **forged gossip** on every topic: garbage, a ledger batch holding a forged transfer, an
//!   overspend correctly signed by a key that holds nothing;
//! - **stalled streams**: job and blob streams opened and left hanging, a partial frame
//!   header written on the job ones (at most [`MAX_STALLED`] held; the oldest is dropped).
//!
//! A testing tool: no node uses it. What it must not achieve — a payment lost, a job paid
//! twice, a node that stops serving — is what the chaos run checks.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::AsyncWriteExt as _;
use tokio::sync::{Mutex, Semaphore};

use crate::clock::now_ms;
use crate::crypto::{CryptoError, Digest, Keypair, PeerId};
use crate::ledger::Genesis;
use crate::net::{self, DhtKey, Multiaddr, NetConfig, NetError, NetworkTag, RpcRequest};
use crate::node::{BLOB_PROTOCOL, COMPONENTS_TOPIC, JOB_PROTOCOL, LEDGER_TOPIC, REPUTATION_TOPIC};
use crate::protocol::{
    ChainLink, ComputeRequest, JobId, JobInput, Signed, Transfer, Validity, Verified, encode_entry_batch,
};

/// Streams left stalled at once at most; opening one more drops the oldest.
pub const MAX_STALLED: usize = 64;
/// Attacks in flight at once at most; a tick that finds none free skips its attack.
const MAX_IN_FLIGHT: usize = 32;
/// How long one attack may take (a dial, a request, a stream opened).
const ATTACK_DEADLINE: Duration = Duration::from_secs(5);
/// Every this many attacks, the targets are dialled again (nodes restart in a chaos run).
const REDIAL_EVERY: u64 = 40;

/// What the hostile peer is asked to do.
#[derive(Clone, Debug)]
pub struct HostileOptions {
    /// The nodes to attack: multiaddrs ending in `/p2p/<peer id>`.
    pub targets: Vec<Multiaddr>,
    /// The network the targets belong to: signed attacks name it, and the connection is
    /// tagged with it (nodes of another network would just ignore the peer).
    pub genesis: Option<Genesis>,
    /// How long to attack.
    pub duration: Duration,
    /// Attacks per second (each one message, request or stream).
    pub per_second: u32,
}

/// What the hostile peer sent, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostileReport {
    /// Requests sent on `/cue-rpc`.
    pub requests: u64,
    /// Requests a node answered (refusals included) instead of the request failing.
    pub answered: u64,
    /// Gossip messages published (forged or garbage).
    pub gossip: u64,
    /// Job and blob streams opened and left stalled.
    pub stalled_streams: u64,
    /// Attacks that could not be made (the target was down, or nobody took the gossip).
    pub failed: u64,
}

impl HostileReport {
    /// Hostile messages sent: requests, gossip and stalled streams.
    pub fn sent(&self) -> u64 {
        self.requests + self.gossip + self.stalled_streams
    }
}

/// Why the hostile peer could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostileError {
    /// A target without a `/p2p/<peer id>`.
    #[error("target {0} does not end in /p2p/<peer id>")]
    Target(String),
    /// No key could be made.
    #[error("key: {0}")]
    Key(#[from] CryptoError),
    /// The network layer did not start.
    #[error("network: {0}")]
    Net(#[from] NetError),
}

/// The peer id a target names.
fn target_peer(addr: &Multiaddr) -> Result<PeerId, HostileError> {
    let text = addr.to_string();
    let id = text.rsplit_once("/p2p/").map(|(_, id)| id).unwrap_or_default();
    id.parse().map_err(|_| HostileError::Target(text.clone()))
}

/// Counters shared by the attacks in flight.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    answered: AtomicU64,
    gossip: AtomicU64,
    stalled: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn report(&self) -> HostileReport {
        HostileReport {
            requests: self.requests.load(Ordering::Relaxed),
            answered: self.answered.load(Ordering::Relaxed),
            gossip: self.gossip.load(Ordering::Relaxed),
            stalled_streams: self.stalled.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// The attacker: its key, its network client, and what it holds.
struct Attacker {
    key: Keypair,
    genesis: Digest,
    client: net::Client,
    counts: Counts,
    stalled: Mutex<VecDeque<net::Stream>>,
    /// The last signed request sent, sent again as a replay.
    last_request: Mutex<Option<Vec<u8>>>,
}

/// Attacks `options.targets` for `options.duration`; answers what was sent. Must be called
/// inside a tokio runtime.
pub async fn run(options: HostileOptions) -> Result<HostileReport, HostileError> {
    let targets: Vec<(PeerId, Multiaddr)> = options
        .targets
        .iter()
        .map(|addr| Ok((target_peer(addr)?, addr.clone())))
        .collect::<Result<_, HostileError>>()?;
    let key = Keypair::generate()?;
    let genesis_id = options.genesis.as_ref().map(Genesis::id);
    let listen = "/ip4/127.0.0.1/tcp/0".parse().map_err(|_| HostileError::Target("listen".into()))?;
    let mut config = NetConfig::new(vec![listen], Vec::new(), Arc::new(StoreNothing));
    config.network = NetworkTag::of(genesis_id.as_ref());
    let (client, mut events, event_loop) = net::new(&key, config)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let network = tokio::spawn(event_loop.run(async move {
        let _ = stopped.await;
    }));
    // Whatever the nodes ask of it goes unanswered.
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    for topic in [LEDGER_TOPIC, REPUTATION_TOPIC, COMPONENTS_TOPIC] {
        client.subscribe(topic).await?;
    }
    let attacker = Arc::new(Attacker {
        key,
        genesis: genesis_id.unwrap_or(crate::market::NO_NETWORK),
        client,
        counts: Counts::default(),
        stalled: Mutex::default(),
        last_request: Mutex::default(),
    });
    let places = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / options.per_second.max(1));
    let deadline = Instant::now() + options.duration;
    let mut round = 0u64;
    while Instant::now() < deadline && !targets.is_empty() {
        tick.tick().await;
        if round.is_multiple_of(REDIAL_EVERY) {
            for (_, addr) in &targets {
                let _ = tokio::time::timeout(ATTACK_DEADLINE, attacker.client.dial(addr.clone())).await;
            }
        }
        let Ok(place) = places.clone().try_acquire_owned() else { continue };
        let target = targets[(round as usize) % targets.len()].0;
        let (attacker, kind) = (attacker.clone(), round);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(ATTACK_DEADLINE, attacker.attack(kind, target)).await;
            drop(place);
        });
        round += 1;
    }
    let _ = places.acquire_many(MAX_IN_FLIGHT as u32).await;
    let report = attacker.counts.report();
    attacker.stalled.lock().await.clear();
    let _ = stop.send(());
    let _ = network.await;
    Ok(report)
}

impl Attacker {
    /// The `round`-th attack, on `target`: requests, gossip and stalled streams in turn.
    async fn attack(&self, round: u64, target: PeerId) {
        let made = match round % 10 {
            0 => self.request(target, RpcRequest::Compute(b"\xff\xfe not a request".to_vec())).await,
            1 => self.unknown_component(target).await,
            2 => self.replay(target).await,
            3 => self.forged_payment(target).await,
            4 => self.request(target, RpcRequest::GetChain { account: vec![7; 32], from_seq: 0 }).await,
            5 => self.publish(LEDGER_TOPIC, b"\x81\x43not".to_vec()).await,
            6 => self.forged_batch().await,
            7 => {
                self.publish(
                    if round % 20 == 7 { REPUTATION_TOPIC } else { COMPONENTS_TOPIC },
                    vec![0x83; 40],
                )
                .await
            }
            8 => self.stall(target, JOB_PROTOCOL, &[0, 0]).await,
            _ => self.stall(target, BLOB_PROTOCOL, &[]).await,
        };
        if !made {
            Counts::add(&self.counts.failed);
        }
    }

    /// Sends one request; answers whether it went out.
    async fn request(&self, target: PeerId, request: RpcRequest) -> bool {
        Counts::add(&self.counts.requests);
        match self.client.request(target, request).await {
            Ok(_) => {
                Counts::add(&self.counts.answered);
                true
            }
            Err(_) => false,
        }
    }

    /// A correctly signed request for a component nobody has, offering everything.
    async fn unknown_component(&self, target: PeerId) -> bool {
        let now = now_ms();
        let Ok(job_id) = JobId::new(now) else { return false };
        let body = ComputeRequest {
            job_id,
            provider: target.public_key(),
            genesis: self.genesis,
            component: Digest::of(&now.to_be_bytes()),
            reference: None,
            input: JobInput::Inline("run()".into()),
            offer: u64::MAX / 2,
            max_fuel: 1_000_000,
            max_memory_bytes: 16 << 20,
            max_execution_ms: 1_000,
        };
        let Ok(signed) = Signed::sign(&self.key, body, Validity::starting(now, 60_000)) else { return false };
        let bytes = signed.bytes().to_vec();
        *self.last_request.lock().await = Some(bytes.clone());
        self.request(target, RpcRequest::Compute(bytes)).await
    }

    /// The last signed request, sent again.
    async fn replay(&self, target: PeerId) -> bool {
        let last = self.last_request.lock().await.clone();
        match last {
            Some(bytes) => self.request(target, RpcRequest::Compute(bytes)).await,
            None => self.unknown_component(target).await,
        }
    }

    /// A transfer from a key that holds nothing, correctly signed (an overspend).
    fn overspend(&self, amount: u64) -> Option<Verified> {
        // To a made-up key: paying oneself would be refused for another reason.
        let to = Keypair::generate().ok()?.public();
        let body = Transfer { genesis: self.genesis, link: ChainLink::FIRST, to, amount, reference: None };
        Verified::sign_transfer(&self.key, body, Validity::starting(now_ms(), 60_000)).ok()
    }

    /// A payment whose signature is broken.
    async fn forged_payment(&self, target: PeerId) -> bool {
        let Some(entry) = self.overspend(1_000) else { return false };
        let mut bytes = entry.event().bytes().to_vec();
        if let Some(last) = bytes.last_mut() {
            *last ^= 1;
        }
        self.request(target, RpcRequest::Pay(bytes)).await
    }

    /// A ledger batch: an overspend, then the same with its signature broken.
    async fn forged_batch(&self) -> bool {
        let Some(entry) = self.overspend(u64::MAX / 4) else { return false };
        let good = entry.event().bytes().to_vec();
        let mut forged = good.clone();
        if let Some(last) = forged.last_mut() {
            *last ^= 1;
        }
        self.publish(LEDGER_TOPIC, encode_entry_batch([good.as_slice(), forged.as_slice()].into_iter())).await
    }

    /// Publishes one message on `topic`; answers whether any peer took it.
    async fn publish(&self, topic: &'static str, message: Vec<u8>) -> bool {
        Counts::add(&self.counts.gossip);
        self.client.publish(topic, message).await.is_ok()
    }

    /// Opens a stream of `protocol` to `target`, writes `prefix` and leaves it hanging.
    async fn stall(&self, target: PeerId, protocol: &'static str, prefix: &[u8]) -> bool {
        let Ok(mut stream) = self.client.open_stream(target, protocol).await else { return false };
        if !prefix.is_empty() && (stream.write_all(prefix).await.is_err() || stream.flush().await.is_err()) {
            return false;
        }
        Counts::add(&self.counts.stalled);
        let mut stalled = self.stalled.lock().await;
        if stalled.len() >= MAX_STALLED {
            stalled.pop_front();
        }
        stalled.push_back(stream);
        true
    }
}

/// The hostile peer keeps no DHT record.
struct StoreNothing;

impl net::RecordValidator for StoreNothing {
    fn accept_record(&self, _: &DhtKey, _: &[u8], _: Option<&PeerId>) -> bool {
        false
    }
}
