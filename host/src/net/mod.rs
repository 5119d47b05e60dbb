//! The peer-to-peer layer — the only importer of libp2p: TCP and QUIC with noise and yamux,
//! identify, ping, a Kademlia DHT on our own protocol name, `/cue-rpc/1.0.0` request-response
//! (CBOR), raw streams for bulk data, and gossipsub for signed events.
//!
//! Structure (rust-libp2p's file-sharing example, without its shortcuts): [`new`] builds the
//! swarm and returns a cheap, cloneable [`Client`], a bounded receiver of [`NetEvent`]s, and the
//! [`EventLoop`] that owns the swarm. Callers spawn the loop and talk to it through the client;
//! the loop ends when every client is dropped or its shutdown future resolves.
//!
//! Bounds: connections (total, per peer, pending), RPC sizes ([`rpc`]), concurrent inbound
//! requests, DHT store sizes, gossip message size, and the event channel
//! ([`EVENT_CHANNEL_CAPACITY`]): when the node above falls behind, inbound requests are answered
//! `Busy` and gossip is dropped (and counted), rather than queued without end.

mod addrs;
mod behaviour;
mod client;
mod codec;
mod event_loop;
mod gossip;
mod keys;
mod refusals;
pub mod rpc;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use client::{Client, Incoming, Stream};
pub(crate) use codec::{decode_request, decode_response, encode_request, encode_response};
pub use event_loop::EventLoop;
pub use gossip::{BURST_PER_TOPIC, GossipId, GossipVerdict, RATE_PER_TOPIC};
pub use keys::{DhtKey, NetworkTag, SERVICE_SHARDS};
pub use libp2p::Multiaddr;
pub use refusals::{Refusal, Refusals};
pub use rpc::{RefusalReason, RpcRequest, RpcResponse};

use crate::crypto::{Keypair, PeerId};

/// Events queued for the node; when full, see the module docs.
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;
/// Commands queued from clients to the event loop; senders wait when it is full.
pub const COMMAND_CHANNEL_CAPACITY: usize = 256;

/// How a node's network is set up.
#[derive(Clone)]
pub struct NetConfig {
    /// Addresses to listen on (`/ip4/127.0.0.1/tcp/0`, `/ip4/0.0.0.0/udp/4001/quic-v1`, ...).
    pub listen: Vec<Multiaddr>,
    /// Peers to join the network through (`/ip4/.../tcp/.../p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Most established connections in all.
    pub max_connections: u32,
    /// Most connections being set up at once, each direction.
    pub max_pending_connections: u32,
    /// Most RPC requests in flight at once per connection (request-response streams).
    pub max_concurrent_requests: usize,
    /// How long an RPC request may wait for its answer.
    pub request_timeout: Duration,
    /// How long a DHT query may run.
    pub query_timeout: Duration,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Decides which DHT records and provider records this node stores for others.
    pub validator: Arc<dyn RecordValidator>,
    /// Where refused input is counted (shared with the node).
    pub refusals: Arc<Refusals>,
    /// The network this node belongs to: its market keys and gossip topics are scoped to it.
    pub network: NetworkTag,
}

impl NetConfig {
    /// Defaults for a node listening on `listen` and joining through `bootstrap`.
    pub fn new(
        listen: Vec<Multiaddr>,
        bootstrap: Vec<Multiaddr>,
        validator: Arc<dyn RecordValidator>,
    ) -> Self {
        NetConfig {
            listen,
            bootstrap,
            max_connections: 512,
            max_pending_connections: 128,
            max_concurrent_requests: 256,
            request_timeout: Duration::from_secs(10),
            query_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(120),
            validator,
            refusals: Arc::default(),
            network: NetworkTag::open(),
        }
    }
}

/// Checks DHT records peers ask this node to store (the layer above knows what is valid).
pub trait RecordValidator: Send + Sync + 'static {
    /// Whether to store `value` under `key`, put there by `publisher`.
    fn accept_record(&self, key: &DhtKey, value: &[u8], publisher: Option<&PeerId>) -> bool;
}

/// Something the network delivers to the node.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// A peer asks something on `/cue-rpc`; answer through `reply` (dropping it answers
    /// `Busy`).
    Request {
        /// Who asks (the transport authenticated it).
        peer: PeerId,
        /// The question.
        request: RpcRequest,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<RpcResponse>,
    },
    /// A gossip message on a topic we subscribe to (named as subscribed: the network's scope
    /// is the network layer's); its content is not yet verified, and it is
    /// forwarded to other peers only once the node accepts it.
    Gossip {
        /// The topic.
        topic: String,
        /// The peer that forwarded it.
        from: PeerId,
        /// The payload (a signed event's bytes).
        data: Vec<u8>,
        /// Report the verdict on it with [`Client::validated`]: until then it is not forwarded.
        id: GossipId,
    },
    /// A connection to a peer was established (first one).
    Connected {
        /// The peer.
        peer: PeerId,
    },
}

/// Why a network operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The swarm could not be set up (transport, behaviour config).
    #[error("network setup failed: {0}")]
    Setup(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A peer could not be reached.
    #[error("cannot reach peer {peer}: {reason}")]
    Unreachable {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A request failed in transit (timeout, reset, unsupported, too large).
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A DHT operation failed.
    #[error("DHT {operation} failed: {reason}")]
    Dht {
        /// What was being done.
        operation: &'static str,
        /// Why.
        reason: String,
    },
    /// A stream could not be opened.
    #[error("cannot open stream to {peer}: {reason}")]
    Stream {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// Gossip could not be published or subscribed.
    #[error("gossip failed: {0}")]
    Gossip(String),
    /// The event loop has stopped.
    #[error("the network has shut down")]
    Closed,
}

/// Builds the swarm for `keypair`: returns the client, the event receiver, and the loop to
/// spawn (`tokio::spawn(event_loop.run(shutdown))`).
pub fn new(
    keypair: &Keypair,
    config: NetConfig,
) -> Result<(Client, tokio::sync::mpsc::Receiver<NetEvent>, EventLoop), NetError> {
    let key = libp2p::identity::Keypair::from_protobuf_encoding(&keypair.to_protobuf_encoding())
        .map_err(|e| NetError::Setup(format!("identity: {e}")))?;
    event_loop::build(key, config)
}

/// Our peer id as libp2p's.
fn to_libp2p(peer: &PeerId) -> libp2p::PeerId {
    libp2p::PeerId::from_bytes(&peer.to_bytes())
        .expect("invariant: an ed25519 identity multihash is always a valid libp2p peer id")
}

/// libp2p's peer id as ours, when it is an ed25519 identity (the only kind Cue accepts).
fn from_libp2p(peer: &libp2p::PeerId) -> Option<PeerId> {
    PeerId::from_binary(&peer.to_bytes())
}
