//! [`Client`]: the cheap, cloneable handle through which the node talks to the event loop.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt as _;
use libp2p::StreamProtocol;
use tokio::sync::{mpsc, oneshot};

use super::{
    DhtKey, GossipId, GossipVerdict, Multiaddr, NetError, RpcRequest, RpcResponse, from_libp2p, to_libp2p,
};
use crate::crypto::PeerId;

/// A bidirectional byte stream to a peer (futures' `AsyncRead + AsyncWrite`).
pub type Stream = libp2p::Stream;

/// How long opening a stream may take, connection included.
const OPEN_STREAM_TIMEOUT: Duration = Duration::from_secs(15);

/// What a client asks of the event loop; each carries the channel its answer goes to.
pub(super) enum Command {
    ListenAddrs { reply: oneshot::Sender<Vec<Multiaddr>> },
    Dial { addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, NetError>> },
    Connect { peer: PeerId, reply: oneshot::Sender<Result<(), NetError>> },
    AddAddress { peer: PeerId, addr: Multiaddr },
    Provide { key: DhtKey, reply: oneshot::Sender<Result<(), NetError>> },
    FindProviders { key: DhtKey, reply: oneshot::Sender<Result<HashSet<PeerId>, NetError>> },
    PutRecord { key: DhtKey, value: Vec<u8>, reply: oneshot::Sender<Result<(), NetError>> },
    GetRecords { key: DhtKey, reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>> },
    Request { peer: PeerId, request: RpcRequest, reply: oneshot::Sender<Result<RpcResponse, NetError>> },
    Subscribe { topic: String, reply: oneshot::Sender<Result<(), NetError>> },
    Publish { topic: String, data: Vec<u8>, reply: oneshot::Sender<Result<(), NetError>> },
    ConnectedPeers { reply: oneshot::Sender<Vec<PeerId>> },
    Validated { id: GossipId, from: PeerId, verdict: GossipVerdict },
    GossipScore { peer: PeerId, reply: oneshot::Sender<Option<f64>> },
    Rtt { peer: PeerId, reply: oneshot::Sender<Option<Duration>> },
}

/// A handle on the network. Clone it freely; the event loop ends when the last one is dropped.
#[derive(Clone)]
pub struct Client {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    streams: libp2p_stream::Control,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("peer_id", &self.peer_id).finish_non_exhaustive()
    }
}

impl Client {
    pub(super) fn new(
        peer_id: PeerId,
        commands: mpsc::Sender<Command>,
        streams: libp2p_stream::Control,
    ) -> Client {
        Client { peer_id, commands, streams }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| NetError::Closed)?;
        answer.await.map_err(|_| NetError::Closed)
    }

    /// The addresses the node listens on now (with `/p2p/<peer id>` appended).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// Reports the node's verdict on a gossip message from `from` (see [`super::NetEvent`]):
    /// accepted, it is forwarded; rejected, its sender is penalised. Waits only for room in the
    /// command queue.
    pub async fn validated(&self, id: GossipId, from: PeerId, verdict: GossipVerdict) {
        let _ = self.commands.send(Command::Validated { id, from, verdict }).await;
    }

    /// `peer`'s gossip score here (`None` when it has none yet); below -80 its gossip is
    /// ignored.
    pub async fn gossip_score(&self, peer: PeerId) -> Result<Option<f64>, NetError> {
        self.ask(|reply| Command::GossipScore { peer, reply }).await
    }

    /// Connects to `addr` and answers the peer id found there.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Makes sure there is a connection to `peer`, dialling the addresses known for it.
    pub async fn connect(&self, peer: PeerId) -> Result<(), NetError> {
        self.ask(|reply| Command::Connect { peer, reply }).await?
    }

    /// Remembers an address for `peer` (the DHT's routing table and the address book).
    pub async fn add_address(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NetError> {
        self.commands.send(Command::AddAddress { peer, addr }).await.map_err(|_| NetError::Closed)
    }

    /// Announces this node as a provider of `key` and waits until the announcement was sent
    /// to the closest peers (re-announced by the DHT periodically after that).
    pub async fn provide(&self, key: DhtKey) -> Result<(), NetError> {
        self.ask(|reply| Command::Provide { key, reply }).await?
    }

    /// Every provider of `key` the DHT knows (this node included when it provides it).
    pub async fn find_providers(&self, key: DhtKey) -> Result<HashSet<PeerId>, NetError> {
        self.ask(|reply| Command::FindProviders { key, reply }).await?
    }

    /// Stores `value` under `key` on the closest peers.
    pub async fn put_record(&self, key: DhtKey, value: Vec<u8>) -> Result<(), NetError> {
        self.ask(|reply| Command::PutRecord { key, value, reply }).await?
    }

    /// Every value found under `key` (unverified: the caller checks each).
    pub async fn get_records(&self, key: DhtKey) -> Result<Vec<Vec<u8>>, NetError> {
        self.ask(|reply| Command::GetRecords { key, reply }).await?
    }

    /// Sends `request` to `peer` on `/cue-rpc/1.0.0` and waits for the answer.
    pub async fn request(&self, peer: PeerId, request: RpcRequest) -> Result<RpcResponse, NetError> {
        self.ask(|reply| Command::Request { peer, request, reply }).await?
    }

    /// Subscribes to a gossip topic; its messages arrive as [`NetEvent::Gossip`](super::NetEvent).
    pub async fn subscribe(&self, topic: &str) -> Result<(), NetError> {
        self.ask(|reply| Command::Subscribe { topic: topic.to_owned(), reply }).await?
    }

    /// Gossips `data` on `topic`.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), NetError> {
        self.ask(|reply| Command::Publish { topic: topic.to_owned(), data, reply }).await?
    }

    /// Peers with an open connection now.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.ask(|reply| Command::ConnectedPeers { reply }).await
    }

    /// The last round-trip time ping measured to `peer`, if connected and measured.
    pub async fn rtt(&self, peer: PeerId) -> Result<Option<Duration>, NetError> {
        self.ask(|reply| Command::Rtt { peer, reply }).await
    }

    /// Opens a stream to `peer` for `protocol`, connecting first if needed.
    pub async fn open_stream(&self, peer: PeerId, protocol: &'static str) -> Result<Stream, NetError> {
        let failed = |reason: String| NetError::Stream { peer, reason };
        self.connect(peer).await?;
        let mut control = self.streams.clone();
        let open = control.open_stream(to_libp2p(&peer), StreamProtocol::new(protocol));
        match tokio::time::timeout(OPEN_STREAM_TIMEOUT, open).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed(format!("no stream within {OPEN_STREAM_TIMEOUT:?}"))),
        }
    }

    /// How many connections the stream behaviour keeps state for: zero once every connection
    /// has closed (the vendored libp2p-stream's accessor; see its CUE-PATCH.md).
    #[cfg(test)]
    pub(super) fn stream_connections_tracked(&self) -> usize {
        self.streams.connections_tracked()
    }

    /// Starts accepting inbound streams for `protocol` (once per protocol).
    pub fn accept(&self, protocol: &'static str) -> Result<Incoming, NetError> {
        let mut control = self.streams.clone();
        control
            .accept(StreamProtocol::new(protocol))
            .map(Incoming)
            .map_err(|e| NetError::Setup(format!("streams for {protocol}: {e}")))
    }
}

/// Inbound streams of one protocol.
pub struct Incoming(libp2p_stream::IncomingStreams);

impl Incoming {
    /// The next inbound stream and who opened it; `None` once the network has shut down.
    /// Streams from peers whose identity is not ed25519 are closed unread.
    pub async fn next(&mut self) -> Option<(PeerId, Stream)> {
        loop {
            let (peer, stream) = self.0.next().await?;
            match from_libp2p(&peer) {
                Some(peer) => return Some((peer, stream)),
                None => tracing::debug!(%peer, "stream from a non-ed25519 peer closed"),
            }
        }
    }
}
