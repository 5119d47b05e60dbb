//! Hostile peers against real nodes: garbage on the TCP port, malformed and oversized RPC
//! messages, forged, expired and replayed manifests, a blob that does not match its hash,
//! forged gossip. Each is refused and the node keeps serving everyone else.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cue_host::crypto::{Digest, Keypair, PeerId};
use cue_host::market::{ProviderPolicy, ResourceManifest};
use cue_host::net::{self, DhtKey, Multiaddr, NetConfig, NetEvent, RecordValidator, RpcRequest, RpcResponse};
use cue_host::node::{BLOB_PROTOCOL, COMPONENTS_TOPIC};
use cue_host::protocol::{ComponentManifest, Signed, Validity};
use futures::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{NodeProcess, TestNode, eventually, guest_bytes};

struct StoreNothing;

impl RecordValidator for StoreNothing {
    fn accept_record(&self, _: &DhtKey, _: &[u8], _: Option<&PeerId>) -> bool {
        false
    }
}

/// A peer built from the bare network layer, free to break every rule.
struct Hostile {
    key: Keypair,
    client: net::Client,
    events: tokio::sync::mpsc::Receiver<NetEvent>,
}

impl Hostile {
    async fn join(bootstrap: &[Multiaddr]) -> Hostile {
        let key = Keypair::generate().unwrap();
        let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        let config = NetConfig::new(listen, bootstrap.to_vec(), Arc::new(StoreNothing));
        let (client, events, event_loop) = net::new(&key, config).unwrap();
        tokio::spawn(event_loop.run(std::future::pending()));
        for addr in bootstrap {
            client.dial(addr.clone()).await.unwrap();
        }
        Hostile { key, client, events }
    }

    fn peer_id(&self) -> PeerId {
        self.key.peer_id()
    }

    /// Announces compute and answers every manifest request with `answer`, counting requests.
    async fn pose_as_provider(self, answer: Vec<u8>) -> Arc<AtomicUsize> {
        self.client.provide(DhtKey::service_shard_of(&self.peer_id())).await.ok();
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let Hostile { client, mut events, .. } = self;
        tokio::spawn(async move {
            let _client = client;
            while let Some(event) = events.recv().await {
                if let NetEvent::Request { reply, .. } = event {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = reply.send(RpcResponse::Manifest(answer.clone()));
                }
            }
        });
        asked
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn manifest_of(provider: &Keypair) -> ResourceManifest {
    ResourceManifest {
        provider: provider.public(),
        genesis: cue_host::market::NO_NETWORK,
        cores: 64,
        memory_bytes: 1 << 40,
        fuel_per_second: u64::MAX / 2,
        engine: "0000000000000000".into(),
        wasmtime: "48.0.8".into(),
        policy: ProviderPolicy {
            price_per_mfuel: 0,
            base_fee: 0,
            max_concurrent_jobs: 64,
            max_memory_bytes: 1 << 34,
            max_execution_ms: 60_000,
        },
        measured_ms: now_ms(),
    }
}

#[test]
fn garbage_on_the_tcp_port_is_refused_and_the_node_keeps_serving() {
    let node = NodeProcess::start(&["--provide"]);
    let payloads: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"\x13/multistream/1.0.0\n\x07/bogus\n".to_vec(),
        (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(),
        vec![0xff; 1 << 20],
    ];
    for payload in &payloads {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", node.tcp_port())).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = stream.write_all(payload);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
    let consumer = NodeProcess::start(&["--bootstrap", &node.listen[0]]);
    let started = std::time::Instant::now();
    loop {
        let output = consumer.cue(&["providers", "--json"]);
        if String::from_utf8_lossy(&output.stdout).contains(&node.peer_id) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the attacked provider is not listed");
        std::thread::sleep(Duration::from_millis(300));
    }
    let logs = node.logs();
    let logged = logs.matches("refused an incoming connection").count();
    assert!(logged >= 2, "garbage connections are logged as refused ({logged}):\n{logs}");
    let status = node.cue(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let counted = status["refused"]["connections"].as_u64().unwrap_or(0);
    assert!(counted >= logged as u64, "and counted ({counted}): {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_rpc_messages_are_refused_and_the_node_keeps_answering() {
    let provider = TestNode::start(&[], true).await;
    let target = provider.node.peer_id();
    let hostile = Hostile::join(&provider.addrs()).await;
    let junk: Vec<Vec<u8>> = vec![
        b"\xff\xff\xff not cbor".to_vec(),
        vec![0xa1; 70 * 1024],
        vec![0x5b; 2 << 20],
        serde_json::to_vec(&serde_json::json!({"GetEverything": null})).unwrap(),
    ];
    for bytes in junk {
        let mut stream = hostile.client.open_stream(target, net::rpc::RPC_PROTOCOL).await.unwrap();
        let _ = stream.write_all(&bytes).await;
        let _ = stream.close().await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the node closes the stream instead of hanging");
        assert!(answer.len() < 16, "no real answer to garbage: {answer:?}");
    }
    let manifest = hostile.client.request(target, RpcRequest::GetManifest).await.unwrap();
    assert!(matches!(manifest, RpcResponse::Manifest(_)), "still answering: {manifest:?}");
    let traversal = RpcRequest::GetComponents { name: "../../etc/passwd".into() };
    match hostile.client.request(target, traversal).await.unwrap() {
        RpcResponse::Refused { reason, .. } => assert_eq!(reason, net::RefusalReason::BadRequest),
        other => panic!("a malformed name is refused, not {other:?}"),
    }
    let refused = provider.handle().refusals();
    assert!(refused["requests"] >= 4, "every malformed request is counted: {refused:?}");
    let consumer = TestNode::start(&provider.addrs(), false).await;
    let views = consumer.handle().providers().await.unwrap();
    assert_eq!(views.len(), 1, "the provider still serves others");
    consumer.stop().await;
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_replayed_manifests_are_refused() {
    let honest = TestNode::start(&[], true).await;
    let boot = honest.addrs();
    let genuine = honest.handle().manifest().unwrap();

    let mut liars = Vec::new();
    // A bad signature: a valid manifest with one bit of its signature flipped.
    let forger = Hostile::join(&boot).await;
    let mut forged =
        Signed::sign(&forger.key, manifest_of(&forger.key), Validity::starting(now_ms(), 3_600_000))
            .unwrap()
            .bytes()
            .to_vec();
    *forged.last_mut().unwrap() ^= 1;
    liars.push((forger.peer_id(), forger.pose_as_provider(forged).await));
    // Expired an hour ago.
    let stale = Hostile::join(&boot).await;
    let old = now_ms() - 2 * 3_600_000;
    let expired =
        Signed::sign(&stale.key, manifest_of(&stale.key), Validity::starting(old, 3_600_000)).unwrap();
    liars.push((stale.peer_id(), stale.pose_as_provider(expired.bytes().to_vec()).await));
    // Signed by itself on behalf of another provider.
    let impostor = Hostile::join(&boot).await;
    let other = Keypair::generate().unwrap();
    let on_behalf =
        Signed::sign(&impostor.key, manifest_of(&other), Validity::starting(now_ms(), 3_600_000)).unwrap();
    liars.push((impostor.peer_id(), impostor.pose_as_provider(on_behalf.bytes().to_vec()).await));
    // The honest provider's genuine manifest, replayed as its own.
    let replayer = Hostile::join(&boot).await;
    liars.push((replayer.peer_id(), replayer.pose_as_provider(genuine.bytes().to_vec()).await));
    // Not a manifest at all.
    let babbler = Hostile::join(&boot).await;
    liars.push((babbler.peer_id(), babbler.pose_as_provider(b"trust me".to_vec()).await));

    let consumer = TestNode::start(&boot, false).await;
    let handle = consumer.handle();
    let liar_ids: HashSet<String> = liars.iter().map(|(id, _)| id.to_string()).collect();
    let honest_id = honest.node.peer_id().to_string();
    eventually("every liar to be asked for its manifest", Duration::from_secs(60), || {
        let handle = handle.clone();
        let liars = &liars;
        let liar_ids = &liar_ids;
        let honest_id = &honest_id;
        async move {
            let views = handle.providers().await.ok()?;
            let listed: HashSet<String> = views.iter().map(|v| v.peer_id.clone()).collect();
            assert!(listed.is_disjoint(liar_ids), "a liar was listed: {listed:?}");
            let all_asked = liars.iter().all(|(_, asked)| asked.load(Ordering::SeqCst) > 0);
            (all_asked && listed.contains(honest_id)).then_some(())
        }
    })
    .await;
    let views = handle.providers().await.unwrap();
    assert_eq!(views.len(), 1);
    assert!(handle.refusals()["manifests"] >= 5, "{:?}", handle.refusals());
    assert_eq!(views[0].manifest["hash"], genuine.hash().to_string(), "the honest manifest, unchanged");
    consumer.stop().await;
    honest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_that_does_not_match_its_hash_is_refused_and_an_honest_holder_is_used() {
    let publisher = TestNode::start(&[], false).await;
    let boot = publisher.addrs();
    let fib = guest_bytes("fib");
    let wanted = Digest::of(&fib);
    // The liar announces fib's hash and serves other bytes; a second liar declares 1 GiB.
    for declared in [None, Some(1u64 << 30)] {
        let liar = Hostile::join(&boot).await;
        liar.client.provide(DhtKey::Blob(wanted)).await.ok();
        let mut incoming = liar.client.accept(BLOB_PROTOCOL).unwrap();
        let client = liar.client.clone();
        tokio::spawn(async move {
            let _client = client;
            while let Some((_, mut stream)) = incoming.next().await {
                let mut asked = [0u8; 32];
                let _ = stream.read_exact(&mut asked).await;
                let lie = guest_bytes("wordcount");
                let size = declared.unwrap_or(lie.len() as u64);
                let _ = stream.write_all(&[0]).await;
                let _ = stream.write_all(&size.to_be_bytes()).await;
                let _ = stream.write_all(&lie).await;
                let _ = stream.close().await;
            }
        });
        std::mem::forget(liar.events);
    }
    let consumer = TestNode::start(&boot, false).await;
    let c = consumer.handle();
    let reference = format!("sha256:{wanted}");
    let refused = eventually("the liars to be found and refused", Duration::from_secs(30), || {
        let c = c.clone();
        let reference = reference.clone();
        async move {
            let error = c.fetch(&reference, |_, _| {}).await.err()?.to_string();
            (error.contains("hash mismatch") || error.contains("exceeds the limit")).then_some(error)
        }
    })
    .await;
    assert!(refused.contains("no peer delivered"), "{refused}");
    let blob_path = consumer.dir.path().join("blobs").join(&wanted.to_string()[..2]).join(wanted.to_string());
    assert!(!blob_path.exists(), "nothing of a refused blob is kept");
    assert!(c.refusals()["blobs"] >= 1, "{:?}", c.refusals());

    publisher.handle().publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let fetched = eventually("the honest holder to deliver", Duration::from_secs(30), || {
        let c = c.clone();
        let reference = reference.clone();
        async move { c.fetch(&reference, |_, _| {}).await.ok() }
    })
    .await;
    assert_eq!(fetched.source, publisher.node.peer_id().to_string());
    assert_eq!(std::fs::read(&fetched.path).unwrap(), fib);
    consumer.stop().await;
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_gossip_is_refused_and_valid_gossip_is_learnt() {
    let node = TestNode::start(&[], false).await;
    let hostile = Hostile::join(&node.addrs()).await;
    hostile.client.subscribe(COMPONENTS_TOPIC).await.unwrap();
    let manifest = |name: &str| ComponentManifest {
        name: name.into(),
        version: semver::Version::new(1, 0, 0),
        sha256: Digest::of(name.as_bytes()),
        size: 1234,
        world: "world job {}".into(),
        publisher: hostile.key.public(),
    };
    let mut forged = manifest("forged").sign(&hostile.key, now_ms()).unwrap().bytes().to_vec();
    *forged.last_mut().unwrap() ^= 1;
    let valid = manifest("gossiped").sign(&hostile.key, now_ms()).unwrap();
    let handle = node.handle();
    eventually("the valid gossip to be learnt", Duration::from_secs(30), || {
        let (client, forged, valid, handle) =
            (hostile.client.clone(), forged.clone(), valid.clone(), handle.clone());
        async move {
            for message in [b"garbage".to_vec(), forged, valid.bytes().to_vec()] {
                let _ = client.publish(COMPONENTS_TOPIC, message).await;
            }
            let error = handle.fetch("gossiped@1", |_, _| {}).await.unwrap_err().to_string();
            // Known by name now: what is missing is only the blob, which nobody holds.
            error.contains("no peer announces blob").then_some(())
        }
    })
    .await;
    let forged = handle.fetch("forged@1", |_, _| {}).await.unwrap_err().to_string();
    assert!(forged.contains("no published version of forged"), "{forged}");
    // Gossip is handled in tasks of their own: the forged message, sent with the valid one,
    // may be judged a moment after the valid one was learnt.
    eventually("the forged manifest to be counted refused", Duration::from_secs(10), || {
        let handle = handle.clone();
        async move { (handle.refusals()["component-manifests"] >= 1).then_some(()) }
    })
    .await;
    node.stop().await;
}

/// Ledger gossip comes in batches (`cue/ledger/2`): a garbage batch is refused, and in a batch
/// holding a forged entry, the valid entries around it are still applied, in their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_batch_keeps_its_valid_entries_and_refuses_a_forged_one() {
    use cue_host::node::LEDGER_TOPIC;
    use cue_host::protocol::{ChainLink, Mint, Transfer, Verified, encode_entry_batch};

    let hostile = Keypair::generate().unwrap();
    let payee = Keypair::generate().unwrap().public();
    let genesis = cue_host::ledger::Genesis {
        network_id: "batch-test".into(),
        mint_authority: hostile.public(),
        allocations: Default::default(),
    };
    let node = TestNode::start_with_ledger(tempfile::tempdir().unwrap(), &[], &genesis).await;
    let mut config =
        NetConfig::new(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()], node.addrs(), Arc::new(StoreNothing));
    config.network = node.node.network();
    let (client, _events, event_loop) = net::new(&hostile, config).unwrap();
    tokio::spawn(event_loop.run(std::future::pending()));
    for addr in node.addrs() {
        client.dial(addr).await.unwrap();
    }
    client.subscribe(LEDGER_TOPIC).await.unwrap();

    let validity = Validity::starting(now_ms(), 3_600_000);
    let mint = Verified::sign_mint(
        &hostile,
        Mint { genesis: genesis.id(), link: ChainLink::FIRST, to: hostile.public(), amount: 1_000 },
        validity,
    )
    .unwrap();
    let pay = |seq: u64, prev: Digest, amount: u64| {
        let link = ChainLink { seq, prev: Some(prev) };
        let body = Transfer { genesis: genesis.id(), link, to: payee, amount, reference: None };
        Verified::sign_transfer(&hostile, body, validity).unwrap()
    };
    let first = pay(1, mint.event().hash(), 100);
    let second = pay(2, first.event().hash(), 200);
    let mut forged = pay(2, first.event().hash(), 900).event().bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let batch = encode_entry_batch(
        [mint.event().bytes(), first.event().bytes(), &forged, second.event().bytes()].into_iter(),
    );

    let handle = node.handle();
    eventually("the batch's valid entries to be applied", Duration::from_secs(30), || {
        let (client, batch, handle) = (client.clone(), batch.clone(), handle.clone());
        async move {
            let _ = client.publish(LEDGER_TOPIC, b"garbage".to_vec()).await;
            let _ = client.publish(LEDGER_TOPIC, batch).await;
            (handle.balance(payee.peer_id()).await.ok()?.0 == 300).then_some(())
        }
    })
    .await;
    assert_eq!(handle.balance(hostile.peer_id()).await.unwrap().0, 700);
    assert!(handle.refusals()["ledger-entries"] >= 2, "{:?}", handle.refusals());
    node.stop().await;
}

/// Gossip is forwarded only once checked: a relay passes a valid ledger entry on to its other
/// peers, never a malformed or forged one, and the peer that sent those loses gossip score.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_forwards_valid_gossip_only_and_penalises_the_sender_of_invalid_gossip() {
    use cue_host::node::LEDGER_TOPIC;
    use cue_host::protocol::{ChainLink, Mint, Verified, encode_entry_batch};

    let hostile = Keypair::generate().unwrap();
    let genesis = cue_host::ledger::Genesis {
        network_id: "relay-test".into(),
        mint_authority: hostile.public(),
        allocations: Default::default(),
    };
    let relay = TestNode::start_with_ledger(tempfile::tempdir().unwrap(), &[], &genesis).await;
    // Neither the sender nor the observer listens, so they can reach each other only through
    // the relay: whatever the observer receives, the relay forwarded.
    let join = |key: &Keypair| {
        let mut config = NetConfig::new(vec![], relay.addrs(), Arc::new(StoreNothing));
        config.network = relay.node.network();
        let (client, events, event_loop) = net::new(key, config).unwrap();
        tokio::spawn(event_loop.run(std::future::pending()));
        (client, events)
    };
    let (sender, _sender_events) = join(&hostile);
    let (observer, mut observed) = join(&Keypair::generate().unwrap());
    for client in [&sender, &observer] {
        client.dial(relay.addrs()[0].clone()).await.unwrap();
        client.subscribe(LEDGER_TOPIC).await.unwrap();
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Some(event) = observed.recv().await {
            if let NetEvent::Gossip { data, .. } = event {
                record.lock().unwrap().push(data);
            }
        }
    });

    let mint = Verified::sign_mint(
        &hostile,
        Mint { genesis: genesis.id(), link: ChainLink::FIRST, to: hostile.public(), amount: 1_000 },
        Validity::starting(now_ms(), 3_600_000),
    )
    .unwrap();
    let valid = encode_entry_batch([mint.event().bytes()].into_iter());
    eventually("the valid entry to be forwarded", Duration::from_secs(30), || {
        let (sender, valid, seen) = (sender.clone(), valid.clone(), seen.clone());
        async move {
            let _ = sender.publish(LEDGER_TOPIC, valid.clone()).await;
            seen.lock().unwrap().contains(&valid).then_some(())
        }
    })
    .await;

    let mut forged = mint.event().bytes().to_vec();
    *forged.last_mut().unwrap() ^= 1;
    let invalid: Vec<Vec<u8>> = (0..5u8)
        .map(|i| if i % 2 == 0 { vec![0xff, i] } else { encode_entry_batch([&forged[..], &[i]].into_iter()) })
        .collect();
    let handle = relay.handle();
    let sender_id = hostile.peer_id();
    eventually("the sender to lose its score", Duration::from_secs(30), || {
        let (sender, invalid, handle) = (sender.clone(), invalid.clone(), handle.clone());
        async move {
            for message in invalid {
                let _ = sender.publish(LEDGER_TOPIC, message).await;
            }
            (handle.gossip_score(sender_id).await.ok()?? < -50.0).then_some(())
        }
    })
    .await;
    let forwarded = invalid.iter().any(|message| seen.lock().unwrap().contains(message));
    assert!(!forwarded, "an invalid message was forwarded");
    assert_eq!(handle.balance(hostile.peer_id()).await.unwrap().0, 1_000);
    relay.stop().await;
}
