//! The libp2p behaviours a Cue node runs, and their configuration (limits included).

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, connection_limits, gossipsub, identify, kad, ping, request_response};

use super::codec::RpcCodec;
use super::rpc::RPC_PROTOCOL;
use super::{NetConfig, NetError};

/// Kademlia on our own protocol name, so Cue's DHT never mixes with the public IPFS one.
/// Version 2: provider keys are CID multihashes and market keys are scoped to a network.
pub const KAD_PROTOCOL: &str = "/cue/kad/2.0.0";
/// What identify announces as our protocol family.
pub const IDENTIFY_PROTOCOL: &str = "/cue/id/1.0.0";
/// Largest gossip message, in bytes: one signed event with room to spare.
pub const MAX_GOSSIP_BYTES: usize = 128 * 1024;

/// Every behaviour of a node; the event loop owns the swarm that drives it.
#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    /// Bounds on connections (total, per peer, pending).
    pub limits: connection_limits::Behaviour,
    /// Learns peers' listen addresses and protocols.
    pub identify: identify::Behaviour,
    /// Measures round-trip times and keeps connections alive.
    pub ping: ping::Behaviour,
    /// The DHT: provider records (services, blobs, names) and manifest records.
    pub kad: kad::Behaviour<MemoryStore>,
    /// `/cue-rpc/1.0.0` control messages.
    pub rpc: request_response::Behaviour<RpcCodec>,
    /// Raw streams for bulk data (blobs, job streams).
    pub stream: libp2p_stream::Behaviour,
    /// Gossip of signed events (ledger, components).
    pub gossipsub: gossipsub::Behaviour,
}

impl Behaviour {
    pub(super) fn new(key: &Keypair, config: &NetConfig) -> Result<Behaviour, NetError> {
        let peer_id = key.public().to_peer_id();
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(2))
            .with_max_pending_incoming(Some(config.max_pending_connections))
            .with_max_pending_outgoing(Some(config.max_pending_connections));
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                .with_agent_version(format!("cue/{}", env!("CARGO_PKG_VERSION"))),
        );
        let rpc = request_response::Behaviour::with_codec(
            RpcCodec::new(config.refusals.clone()),
            [(StreamProtocol::new(RPC_PROTOCOL), request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(config.max_concurrent_requests),
        );
        // Every payload is a signed event of ours, checked by the node on receipt; a second
        // signature by gossipsub's envelope would cost a signing per publish and a verification
        // per receipt for nothing. Messages are anonymous and identified by their content, so the
        // same event published twice (by its author and a relay) is one message.
        // Every message waits for the node's verdict before it is forwarded (see `gossip`).
        let mut gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Anonymous,
            gossipsub::ConfigBuilder::default()
                .max_transmit_size(MAX_GOSSIP_BYTES)
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .validate_messages()
                .message_id_fn(|message: &gossipsub::Message| {
                    gossipsub::MessageId::from(crate::crypto::Digest::of(&message.data).0.to_vec())
                })
                .heartbeat_interval(Duration::from_millis(500))
                .build()
                .map_err(|e| NetError::Setup(format!("gossipsub: {e}")))?,
        )
        .map_err(|e| NetError::Setup(format!("gossipsub: {e}")))?;
        let (params, thresholds) = super::gossip::score_params();
        gossipsub
            .with_peer_score(params, thresholds)
            .map_err(|e| NetError::Setup(format!("gossipsub: {e}")))?;
        Ok(Behaviour {
            limits: connection_limits::Behaviour::new(limits),
            identify,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(15))),
            kad: kademlia(peer_id, config),
            rpc,
            stream: libp2p_stream::Behaviour::new(),
            gossipsub,
        })
    }
}

fn kademlia(peer_id: libp2p::PeerId, config: &NetConfig) -> kad::Behaviour<MemoryStore> {
    let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    kad_config
        .set_query_timeout(config.query_timeout)
        // Incoming records and provider records are checked before they are stored: only our
        // key namespaces, only well-formed signed values (see `event_loop::admit_*`).
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_periodic_bootstrap_interval(Some(Duration::from_secs(60)));
    let store = MemoryStore::with_config(
        peer_id,
        MemoryStoreConfig {
            max_records: 4096,
            max_value_bytes: 16 * 1024,
            // Above the default 20: a node keeps more providers per shard than it must, so a
            // bigger network stays visible (the sharding is what makes it scale; see docs).
            max_providers_per_key: 64,
            max_provided_keys: 4096,
        },
    );
    let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
    // Loopback and private networks have no confirmed external address; serve the DHT anyway.
    kad.set_mode(Some(kad::Mode::Server));
    kad
}
