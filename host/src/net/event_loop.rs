//! [`EventLoop`]: the one task that owns the swarm, the maps of pending operations and the
//! address book; it turns client commands into swarm calls and swarm events into answers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use libp2p::core::ConnectedPoint;
use libp2p::kad::{self, QueryId, QueryResult, Quorum, Record, RecordKey};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Swarm, gossipsub, identify, noise, ping, tcp, yamux};
use tokio::sync::{mpsc, oneshot};

use super::addrs::{is_dialable, peer_of, without_p2p};
use super::behaviour::{Behaviour, BehaviourEvent};
use super::client::{Client, Command};
use super::gossip::{GossipGate, GossipId, GossipVerdict, scoped_topic};
use super::{
    COMMAND_CHANNEL_CAPACITY, DhtKey, EVENT_CHANNEL_CAPACITY, Multiaddr, NetConfig, NetError, NetEvent,
    Refusal, RefusalReason, RpcRequest, RpcResponse, from_libp2p, to_libp2p,
};
use crate::crypto::PeerId;

/// Peers whose addresses the address book keeps; the oldest entry goes first.
const ADDRESS_BOOK_PEERS: usize = 4096;
/// Addresses kept per peer.
const ADDRESSES_PER_PEER: usize = 8;

/// An answer the event loop owes a client.
type Reply<T> = oneshot::Sender<Result<T, NetError>>;

/// The values a DHT record lookup found.
type RecordValues = Vec<Vec<u8>>;

type ReplyFuture = Pin<Box<dyn Future<Output = (ResponseChannel<RpcResponse>, RpcResponse)> + Send>>;

/// The task that drives the network. Shutdown: it returns when its shutdown future resolves
/// or every [`Client`] is dropped; pending operations are answered [`NetError::Closed`] as
/// their reply channels drop, and connections close with the swarm.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    config: NetConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    /// Dials by address, answered with the peer found there.
    dials: HashMap<ConnectionId, Reply<PeerId>>,
    /// Callers waiting for a connection to a peer.
    connects: HashMap<libp2p::PeerId, Vec<Reply<()>>>,
    provides: HashMap<QueryId, Reply<()>>,
    finds: HashMap<QueryId, (HashSet<PeerId>, Reply<HashSet<PeerId>>)>,
    puts: HashMap<QueryId, Reply<()>>,
    gets: HashMap<QueryId, (RecordValues, Reply<RecordValues>)>,
    /// RPC requests on their way, by id, with the peer asked.
    requests: HashMap<OutboundRequestId, (PeerId, Reply<RpcResponse>)>,
    /// Inbound requests the node is answering (bounded by the behaviour's stream limit).
    replies: FuturesUnordered<ReplyFuture>,
    /// Addresses learnt from identify, the DHT and connections, for dialling by peer id.
    addresses: HashMap<libp2p::PeerId, Vec<Multiaddr>>,
    address_order: VecDeque<libp2p::PeerId>,
    rtts: HashMap<libp2p::PeerId, Duration>,
    /// What gossip reaches the node (see `gossip::GossipGate`).
    gossip_gate: GossipGate,
}

pub(super) fn build(
    key: libp2p::identity::Keypair,
    config: NetConfig,
) -> Result<(Client, mpsc::Receiver<NetEvent>, EventLoop), NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let peer_id = from_libp2p(&key.public().to_peer_id()).ok_or_else(|| setup(&"the key is not ed25519"))?;
    let behaviour = Behaviour::new(&key, &config)?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_behaviour(|_| behaviour)
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| {
            // Lazy negotiation: a stream's first data goes with its protocol proposal instead of
            // after the listener's echo (wire-compatible with V1; saves a round trip per stream).
            c.with_idle_connection_timeout(config.idle_timeout)
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen { addr: addr.to_string(), reason: e.to_string() })?;
    }
    let streams = swarm.behaviour().stream.new_control();
    let (command_tx, commands) = mpsc::channel(COMMAND_CHANNEL_CAPACITY);
    let (events, event_rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let gossip_gate = GossipGate::new(config.network.clone(), config.refusals.clone());
    let mut event_loop = EventLoop {
        swarm,
        config,
        commands,
        events,
        dials: HashMap::new(),
        connects: HashMap::new(),
        provides: HashMap::new(),
        finds: HashMap::new(),
        puts: HashMap::new(),
        gets: HashMap::new(),
        requests: HashMap::new(),
        replies: FuturesUnordered::new(),
        addresses: HashMap::new(),
        address_order: VecDeque::new(),
        rtts: HashMap::new(),
        gossip_gate,
    };
    event_loop.join_bootstrap_peers();
    Ok((Client::new(peer_id, command_tx, streams), event_rx, event_loop))
}

impl EventLoop {
    /// Runs until `shutdown` resolves or every client is dropped.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some((channel, response)) = self.replies.next(), if !self.replies.is_empty() => {
                    // The requester may have gone; nothing to do about it.
                    let _ = self.swarm.behaviour_mut().rpc.send_response(channel, response);
                }
            }
        }
        tracing::debug!("network event loop stopped");
    }

    fn join_bootstrap_peers(&mut self) {
        for addr in self.config.bootstrap.clone() {
            if let Some(peer) = peer_of(&addr) {
                self.learn_address(peer, addr.clone());
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::warn!(%addr, "cannot dial bootstrap peer: {e}");
            }
        }
    }

    /// Hands a client's command to the swarm (the DHT's and gossip's to their own handlers).
    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs { reply } => {
                let me = *self.swarm.local_peer_id();
                let addrs = self.swarm.listeners().map(|a| a.clone().with_p2p(me).unwrap_or_else(|a| a));
                let _ = reply.send(addrs.collect());
            }
            Command::Dial { addr, reply } => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => drop(self.dials.insert(id, reply)),
                    Err(e) => drop(reply.send(Err(NetError::Setup(format!("cannot dial {addr}: {e}"))))),
                }
            }
            Command::Connect { peer, reply } => self.connect(peer, reply),
            Command::AddAddress { peer, addr } => self.learn_address(to_libp2p(&peer), addr),
            Command::Request { peer, request, reply } => {
                let target = to_libp2p(&peer);
                self.dial_known(target);
                let id = self.swarm.behaviour_mut().rpc.send_request(&target, request);
                self.requests.insert(id, (peer, reply));
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().filter_map(from_libp2p).collect());
            }
            Command::Rtt { peer, reply } => {
                let _ = reply.send(self.rtts.get(&to_libp2p(&peer)).copied());
            }
            dht @ (Command::Provide { .. }
            | Command::FindProviders { .. }
            | Command::PutRecord { .. }
            | Command::GetRecords { .. }) => self.on_dht_command(dht),
            gossip => self.on_gossip_command(gossip),
        }
    }

    /// The DHT's commands: keys go on the DHT as `DhtKey::to_bytes` makes them in this
    /// node's network.
    fn on_dht_command(&mut self, command: Command) {
        let network = self.config.network.clone();
        let key_of = |key: &DhtKey| RecordKey::new(&key.to_bytes(&network));
        let kad = &mut self.swarm.behaviour_mut().kad;
        match command {
            Command::Provide { key, reply } => match kad.start_providing(key_of(&key)) {
                Ok(id) => drop(self.provides.insert(id, reply)),
                Err(e) => drop(reply.send(Err(dht("provide", e)))),
            },
            Command::FindProviders { key, reply } => {
                let id = kad.get_providers(key_of(&key));
                self.finds.insert(id, (HashSet::new(), reply));
            }
            Command::PutRecord { key, value, reply } => {
                match kad.put_record(Record::new(key_of(&key), value), Quorum::One) {
                    Ok(id) => drop(self.puts.insert(id, reply)),
                    Err(e) => drop(reply.send(Err(dht("put", e)))),
                }
            }
            Command::GetRecords { key, reply } => {
                let id = kad.get_record(key_of(&key));
                self.gets.insert(id, (Vec::new(), reply));
            }
            // Not the DHT's: `on_command` hands over only the four above.
            _ => {}
        }
    }

    /// Gossip's commands: topics scoped to this node's network, verdicts, scores.
    fn on_gossip_command(&mut self, command: Command) {
        let network = self.config.network.clone();
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        match command {
            Command::Subscribe { topic, reply } => {
                let topic = scoped_topic(&topic, &network);
                let scored = gossipsub.set_topic_params(topic.clone(), super::gossip::topic_params());
                let result = scored
                    .map_err(str::to_owned)
                    .and_then(|()| gossipsub.subscribe(&topic).map(drop).map_err(|e| e.to_string()));
                let _ = reply.send(result.map_err(NetError::Gossip));
            }
            Command::Publish { topic, data, reply } => {
                let result = gossipsub.publish(scoped_topic(&topic, &network), data);
                let _ = reply.send(result.map(drop).map_err(|e| NetError::Gossip(e.to_string())));
            }
            Command::Validated { id, from, verdict } => self.report(&id, &to_libp2p(&from), verdict),
            Command::GossipScore { peer, reply } => {
                let _ = reply.send(gossipsub.peer_score(&to_libp2p(&peer)));
            }
            // Not gossip's: `on_command` handles the rest itself.
            _ => {}
        }
    }

    /// A gossip message: handed to the node for its verdict, unless the gate turns it away
    /// (its sender over its rate, another network's topic) or the node is behind (then it is
    /// ignored: not forwarded, counted).
    fn on_gossip(&mut self, source: libp2p::PeerId, id: GossipId, message: gossipsub::Message) {
        let (from, topic) = match self.gossip_gate.admit(source, &message) {
            Ok(admitted) => admitted,
            Err(verdict) => return self.report(&id, &source, verdict),
        };
        let event = NetEvent::Gossip { topic, from, data: message.data, id: id.clone() };
        if self.events.try_send(event).is_err() {
            self.config.refusals.count(Refusal::Overload);
            tracing::warn!("node is behind: dropped a gossip message");
            self.report(&id, &source, GossipVerdict::Ignore);
        }
    }

    /// Tells gossipsub the verdict on a held message.
    fn report(&mut self, id: &GossipId, source: &libp2p::PeerId, verdict: GossipVerdict) {
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        gossipsub.report_message_validation_result(&id.0, source, verdict.acceptance());
    }

    fn connect(&mut self, peer: PeerId, reply: oneshot::Sender<Result<(), NetError>>) {
        let target = to_libp2p(&peer);
        if self.swarm.is_connected(&target) {
            let _ = reply.send(Ok(()));
            return;
        }
        let waiting = self.connects.entry(target).or_default();
        waiting.push(reply);
        if waiting.len() == 1 && !self.dial_known(target) {
            let failed = NetError::Unreachable { peer, reason: "no known address".into() };
            self.answer_connects(&target, Err(failed));
        }
    }

    /// Dials `peer` with every address known for it unless connected or dialling already;
    /// answers whether a connection is or may soon be there.
    fn dial_known(&mut self, peer: libp2p::PeerId) -> bool {
        if self.swarm.is_connected(&peer) {
            return true;
        }
        let addresses = self.addresses.get(&peer).cloned().unwrap_or_default();
        let opts = DialOpts::peer_id(peer)
            .addresses(addresses)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => true,
            Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => true,
            Err(e) => {
                tracing::debug!(%peer, "cannot dial: {e}");
                false
            }
        }
    }

    fn answer_connects(&mut self, peer: &libp2p::PeerId, result: Result<(), NetError>) {
        for reply in self.connects.remove(peer).unwrap_or_default() {
            let _ = reply.send(result.clone());
        }
    }

    fn learn_address(&mut self, peer: libp2p::PeerId, addr: Multiaddr) {
        let addr = without_p2p(addr);
        if !is_dialable(&addr) {
            return;
        }
        self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        let known = self.addresses.entry(peer).or_default();
        if known.contains(&addr) {
            return;
        }
        if known.is_empty() {
            self.address_order.push_back(peer);
        }
        known.insert(0, addr);
        known.truncate(ADDRESSES_PER_PEER);
        while self.address_order.len() > ADDRESS_BOOK_PEERS {
            if let Some(oldest) = self.address_order.pop_front() {
                self.addresses.remove(&oldest);
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "listening"),
            SwarmEvent::ConnectionEstablished {
                peer_id, connection_id, endpoint, num_established, ..
            } => {
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(from_libp2p(&peer_id).ok_or_else(|| {
                        NetError::Setup(format!("peer {peer_id} does not have an ed25519 identity"))
                    }));
                }
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    self.learn_address(peer_id, address.clone());
                }
                self.answer_connects(&peer_id, Ok(()));
                if num_established.get() == 1
                    && let Some(peer) = from_libp2p(&peer_id)
                {
                    let _ = self.events.try_send(NetEvent::Connected { peer });
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                match cause {
                    Some(error) => tracing::info!(%peer_id, "connection closed: {error}"),
                    None => tracing::debug!(%peer_id, "connection closed"),
                }
                if num_established == 0 {
                    self.rtts.remove(&peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error, .. } => {
                tracing::debug!(?peer_id, "outgoing connection failed: {error}");
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Setup(format!("dial failed: {error}"))));
                }
                if let Some(peer) = peer_id
                    && !self.swarm.is_connected(&peer)
                    && let Some(ours) = from_libp2p(&peer)
                {
                    let failed = NetError::Unreachable { peer: ours, reason: error.to_string() };
                    self.answer_connects(&peer, Err(failed));
                }
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                self.config.refusals.count(Refusal::Connection);
                tracing::info!(%send_back_addr, "refused an incoming connection: {error}");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Kad(event) => self.on_kad_event(event),
            BehaviourEvent::Rpc(event) => self.on_rpc_event(event),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in info.listen_addrs {
                    self.learn_address(peer_id, addr);
                }
            }
            BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. }) => {
                self.rtts.insert(peer, rtt);
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(propagation_source, GossipId(message_id), message),
            _ => {}
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed { id, result, step, .. } => {
                self.on_query(id, result, step.last)
            }
            kad::Event::RoutingUpdated { peer, addresses, .. } => {
                for addr in addresses.iter() {
                    self.learn_address(peer, addr.clone());
                }
            }
            kad::Event::InboundRequest { request } => self.on_inbound_kad(request),
            _ => {}
        }
    }

    fn on_inbound_kad(&mut self, request: kad::InboundRequest) {
        match request {
            kad::InboundRequest::PutRecord { source, record: Some(record), .. } => {
                let publisher = record.publisher.as_ref().and_then(from_libp2p);
                let key = DhtKey::parse_record(record.key.as_ref());
                if key.as_ref().is_some_and(|(network, _)| *network != self.config.network) {
                    self.config.refusals.count(Refusal::OtherNetwork);
                    tracing::info!(%source, "refused a DHT record of another network");
                    return;
                }
                let accepted = key.is_some_and(|(_, key)| {
                    self.config.validator.accept_record(&key, &record.value, publisher.as_ref())
                });
                if accepted {
                    let store = self.swarm.behaviour_mut().kad.store_mut();
                    if let Err(e) = libp2p::kad::store::RecordStore::put(store, record) {
                        tracing::debug!(%source, "record not stored: {e}");
                    }
                } else {
                    self.config.refusals.count(Refusal::Record);
                    tracing::info!(%source, "refused a DHT record outside Cue's rules");
                }
            }
            kad::InboundRequest::AddProvider { record: Some(mut record) } => {
                // libp2p-kad sends only confirmed external addresses with an announcement, and
                // a node on loopback or a private network has none: keep the addresses this
                // node knows for the provider, so it can pass them on to whoever asks.
                if record.addresses.is_empty() {
                    record.addresses = self.addresses.get(&record.provider).cloned().unwrap_or_default();
                }
                if DhtKey::is_provider_key(record.key.as_ref()) {
                    let store = self.swarm.behaviour_mut().kad.store_mut();
                    if let Err(e) = libp2p::kad::store::RecordStore::add_provider(store, record) {
                        tracing::debug!("provider record not stored: {e}");
                    }
                } else {
                    self.config.refusals.count(Refusal::Record);
                    tracing::info!(provider = %record.provider, "refused a provider record for a foreign key");
                }
            }
            _ => {}
        }
    }

    fn on_query(&mut self, id: QueryId, result: QueryResult, last: bool) {
        match result {
            QueryResult::StartProviding(result) => {
                if let Some(reply) = self.provides.remove(&id) {
                    let _ = reply.send(result.map(drop).map_err(|e| dht("provide", e)));
                }
            }
            QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders { providers, .. })) => {
                // Dial while the query still knows their addresses (it forgets them when done).
                for provider in &providers {
                    self.dial_known(*provider);
                }
                if let Some((found, _)) = self.finds.get_mut(&id) {
                    found.extend(providers.iter().filter_map(from_libp2p));
                }
                if last {
                    self.finish_find(id, None);
                }
            }
            QueryResult::GetProviders(Ok(kad::GetProvidersOk::FinishedWithNoAdditionalRecord { .. })) => {
                self.finish_find(id, None)
            }
            QueryResult::GetProviders(Err(e)) => self.finish_find(id, Some(e.to_string())),
            QueryResult::PutRecord(result) => {
                if let Some(reply) = self.puts.remove(&id) {
                    let _ = reply.send(result.map(drop).map_err(|e| dht("put", e)));
                }
            }
            QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                if let Some((values, _)) = self.gets.get_mut(&id) {
                    values.push(found.record.value);
                }
                if last {
                    self.finish_get(id);
                }
            }
            QueryResult::GetRecord(_) => self.finish_get(id),
            _ => {}
        }
    }

    /// Answers a provider search. A timeout after finding some is still an answer: the DHT
    /// returns what it found within the query timeout.
    fn finish_find(&mut self, id: QueryId, error: Option<String>) {
        if let Some((found, reply)) = self.finds.remove(&id) {
            let answer = match error {
                Some(reason) if found.is_empty() => {
                    Err(NetError::Dht { operation: "find providers", reason })
                }
                _ => Ok(found),
            };
            let _ = reply.send(answer);
        }
    }

    fn finish_get(&mut self, id: QueryId) {
        if let Some((values, reply)) = self.gets.remove(&id) {
            let _ = reply.send(Ok(values));
        }
    }

    fn on_rpc_event(&mut self, event: request_response::Event<RpcRequest, RpcResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.on_inbound_request(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some((_, reply)) = self.requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some((peer, reply)) = self.requests.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request { peer, reason: error.to_string() }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.config.refusals.count(Refusal::Request);
                tracing::info!(%peer, "inbound request failed: {error}");
            }
            _ => {}
        }
    }

    fn on_inbound_request(
        &mut self,
        peer: libp2p::PeerId,
        request: RpcRequest,
        channel: ResponseChannel<RpcResponse>,
    ) {
        let Some(from) = from_libp2p(&peer) else {
            let refusal = RpcResponse::refused(RefusalReason::BadRequest, "only ed25519 peers are served");
            let _ = self.swarm.behaviour_mut().rpc.send_response(channel, refusal);
            return;
        };
        let (reply, answer) = oneshot::channel();
        if self.events.try_send(NetEvent::Request { peer: from, request, reply }).is_err() {
            self.config.refusals.count(Refusal::Overload);
            let busy = RpcResponse::refused(RefusalReason::Busy, "the node is overloaded; try again later");
            let _ = self.swarm.behaviour_mut().rpc.send_response(channel, busy);
            return;
        }
        let timeout = self.config.request_timeout;
        self.replies.push(Box::pin(async move {
            let response = match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(response)) => response,
                _ => RpcResponse::refused(RefusalReason::Busy, "the node could not answer in time"),
            };
            (channel, response)
        }));
    }
}

fn dht(operation: &'static str, error: impl std::fmt::Display) -> NetError {
    NetError::Dht { operation, reason: error.to_string() }
}
