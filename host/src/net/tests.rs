//! The network layer against itself on 127.0.0.1: what it keeps once connections have ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::AsyncWriteExt as _;
use tokio::sync::{mpsc, oneshot};

use super::{Client, DhtKey, Multiaddr, NetConfig, NetEvent, RecordValidator};
use crate::crypto::{Keypair, PeerId};

/// The protocol the test's streams speak.
const TEST_PROTOCOL: &str = "/cue-test/stream/1.0.0";

/// How many short-lived peers come and go.
const VISITORS: usize = 32;

/// A network of its own, stopped when dropped.
struct Peer {
    /// The handle on it.
    client: Client,
    /// Where it listens, `/p2p/<id>` included.
    addr: Multiaddr,
    /// Stops its event loop (and so closes its connections) when sent or dropped.
    _stop: oneshot::Sender<()>,
    /// Kept so the event loop never finds its event channel closed.
    _events: mpsc::Receiver<NetEvent>,
    /// Inbound streams of [`TEST_PROTOCOL`], accepted and dropped.
    _incoming: super::Incoming,
}

/// Stores no DHT record for anyone.
struct NoRecords;

impl RecordValidator for NoRecords {
    fn accept_record(&self, _: &DhtKey, _: &[u8], _: Option<&PeerId>) -> bool {
        false
    }
}

async fn start_peer() -> Peer {
    let key = Keypair::generate().expect("a key");
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("an address")];
    let config = NetConfig::new(listen, vec![], Arc::new(NoRecords));
    let (client, events, event_loop) = super::new(&key, config).expect("a network");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(event_loop.run(async move {
        let _ = stopped.await;
    }));
    let incoming = client.accept(TEST_PROTOCOL).expect("accepting streams");
    let addr = eventually("a listen address", || async {
        client.listen_addrs().await.ok().and_then(|addrs| addrs.into_iter().next())
    })
    .await;
    Peer { client, addr, _stop: stop, _events: events, _incoming: incoming }
}

async fn eventually<T, Fut: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> Fut) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "waited 20 s for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `from` connects to `to` and opens a stream on it, with a few bytes written.
async fn connect_and_stream(from: &Client, to: &Peer) {
    let peer = from.dial(to.addr.clone()).await.expect("a connection");
    let mut stream = from.open_stream(peer, TEST_PROTOCOL).await.expect("a stream");
    stream.write_all(b"hello").await.expect("written");
    stream.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_behaviour_forgets_every_connection_once_it_has_closed() {
    let hub = start_peer().await;
    for round in 0..VISITORS {
        let visitor = start_peer().await;
        // Half the connections are inbound to the hub, half outbound from it.
        if round % 2 == 0 {
            connect_and_stream(&visitor.client, &hub).await;
        } else {
            connect_and_stream(&hub.client, &visitor).await;
        }
        let visitor_id = visitor.client.peer_id();
        eventually("the hub to see the visitor's connection", || async {
            hub.client.connected_peers().await.ok().filter(|peers| peers.contains(&visitor_id))
        })
        .await;
        assert!(hub.client.stream_connections_tracked() >= 1, "the open connection is tracked");
        drop(visitor);
    }
    eventually("every visitor's connection to close", || async {
        hub.client.connected_peers().await.ok().filter(Vec::is_empty)
    })
    .await;
    assert_eq!(
        hub.client.stream_connections_tracked(),
        0,
        "no state kept for any of the {VISITORS} closed connections"
    );
}
