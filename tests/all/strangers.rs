//! Strangers holding a provider's resources: each test attacks a real in-process provider on
//! 127.0.0.1 through the bare network layer and shows the defence — a replay after a restart
//! refused, one key's flood leaving a slot for another consumer, unstarted reservations given
//! back in seconds, a consumer gone mid-run stopping the run and freeing its slot, and a blob
//! store full of what the provider must keep refusing a new component instead of growing.

use std::time::{Duration, Instant};

use cue_host::crypto::Keypair;
use cue_host::net::RpcResponse;
use cue_host::protocol::{ComputeReject, JobInput, RejectReason, Signed};

use crate::contracts_in_process::{
    ask_on_stream, bare_consumer, consumer_with_genesis, decode_hex, request_for, sign_now,
};
use crate::support::{guest_bytes, keyed_dir};

/// A provider on `dir` for `genesis`, as `quick_provider` sells (2 concurrent jobs: 4 job
/// places, 3 of them at most for one consumer).
async fn start_provider(
    dir: &tempfile::TempDir,
    genesis: &cue_host::ledger::Genesis,
) -> cue_host::node::Node {
    start_provider_with(dir, genesis, |_| {}).await
}

/// [`start_provider`], its configuration changed by `adjust` first.
async fn start_provider_with(
    dir: &tempfile::TempDir,
    genesis: &cue_host::ledger::Genesis,
    adjust: impl FnOnce(&mut cue_host::node::NodeConfig),
) -> cue_host::node::Node {
    let data_dir = cue_host::datadir::DataDir::resolve(Some(dir.path().to_path_buf()));
    let mut config = cue_host::node::NodeConfig::loopback(data_dir, vec![]);
    config.sandbox = crate::support::small_sandbox_config();
    config.genesis = Some(genesis.clone());
    config.provide = Some(crate::support::quick_provider());
    adjust(&mut config);
    cue_host::node::Node::start(config).await.unwrap()
}

fn rejected(answer: &RpcResponse) -> Signed<ComputeReject> {
    let RpcResponse::Rejected(bytes) = answer else { panic!("not rejected: {answer:?}") };
    Signed::<ComputeReject>::decode(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_provider_refuses_a_request_it_already_ran() {
    let (dir, _) = keyed_dir();
    let (consumer, genesis) = consumer_with_genesis("replay-restart-test");
    let node = start_provider(&dir, &genesis).await;
    let fib = guest_bytes("fib");
    node.handle().publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let request = request_for(&consumer, node.peer_id(), &genesis, &fib, 1);
    let client = bare_consumer(&consumer, &node).await;
    let (_stream, frame) = ask_on_stream(&client, node.peer_id(), &request, None).await;
    assert_eq!(frame["delivered"]["output"], "6765", "{frame}");
    drop(client);
    node.shutdown().await;

    let node = start_provider(&dir, &genesis).await;
    let client = bare_consumer(&consumer, &node).await;
    let (_stream, frame) = ask_on_stream(&client, node.peer_id(), &request, None).await;
    let reject: Signed<ComputeReject> = decode_hex(&frame["rejected"]["reject"]);
    assert_eq!(reject.body().reason, RejectReason::Invalid, "{:?}", reject.body());
    assert!(reject.body().message.contains("replay"), "{:?}", reject.body());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_flooding_requests_leaves_a_slot_for_another_and_its_unstarted_places_return_in_seconds() {
    let (dir, _) = keyed_dir();
    let (flooder, genesis) = consumer_with_genesis("flood-test");
    let node = start_provider(&dir, &genesis).await;
    let fib = guest_bytes("fib");
    node.handle().publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let provider = node.peer_id();
    let flood = bare_consumer(&flooder, &node).await;

    // Accepted contracts never started hold places: the flooder gets its share and no more.
    let mut accepted = 0;
    let mut busy = None;
    for job in 1..=10 {
        let request = request_for(&flooder, provider, &genesis, &fib, job);
        match crate::funds::compute(&flood, provider, &request).await {
            RpcResponse::Accepted(_) => accepted += 1,
            other => busy = Some(rejected(&other)),
        }
    }
    assert_eq!(accepted, 3, "3 of the 4 job places at most for one key");
    let busy = busy.expect("the flood was refused");
    assert_eq!(busy.body().reason, RejectReason::Busy, "{:?}", busy.body());
    let flooded = Instant::now();

    // Another consumer still gets its job run.
    let honest = Keypair::generate().unwrap();
    crate::funds::give(&node, &flooder, genesis.id(), &honest, 10_000).await;
    let client = bare_consumer(&honest, &node).await;
    let request = request_for(&honest, provider, &genesis, &fib, 20);
    let (_stream, frame) = ask_on_stream(&client, provider, &request, None).await;
    assert_eq!(frame["delivered"]["output"], "6765", "{frame}");

    // The flooder's unstarted contracts end in seconds, failed, and its places come back.
    let again = loop {
        let request = request_for(&flooder, provider, &genesis, &fib, 30);
        let answer = crate::funds::compute(&flood, provider, &request).await;
        if matches!(answer, RpcResponse::Accepted(_)) {
            break flooded.elapsed();
        }
        assert!(flooded.elapsed() < Duration::from_secs(10), "places still held: {answer:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(again < Duration::from_secs(7), "unstarted places held {again:?}");
    // The three were accepted one after another, so they end one after another: the first
    // place back is seen before the last has ended.
    let handle = node.handle();
    crate::support::eventually("all three unstarted contracts to end", Duration::from_secs(10), || {
        let handle = handle.clone();
        async move {
            let jobs = handle.jobs(20).await.ok()?;
            let expired = jobs.iter().filter(|c| c["detail"] == "the consumer never started the job").count();
            (expired == 3).then_some(())
        }
    })
    .await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_gone_mid_run_stops_the_run_and_frees_its_slot() {
    let (dir, _) = keyed_dir();
    let (consumer, genesis) = consumer_with_genesis("gone-mid-run-test");
    let node = start_provider(&dir, &genesis).await;
    let spin = guest_bytes("hostile-infinite-loop");
    node.handle().publish(spin.clone(), "spin", "1.0.0").await.unwrap();
    let fib = guest_bytes("fib");
    node.handle().publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let provider = node.peer_id();
    let client = bare_consumer(&consumer, &node).await;

    // Two 8-second runs take both of the provider's run permits; their consumer leaves.
    for job in 1..=2 {
        let mut body = request_for(&consumer, provider, &genesis, &spin, job).body().clone();
        body.input = JobInput::Inline("run()".into());
        body.max_fuel = 1_000_000_000_000;
        body.max_execution_ms = 8_000;
        body.offer = 10 + 2 * 1_000_000;
        let (stream, frame) = ask_on_stream(&client, provider, &sign_now(&consumer, body), None).await;
        assert!(frame.get("contract").is_some(), "a long job is contracted while it runs: {frame}");
        drop(stream);
    }
    let left = Instant::now();

    // Both runs stop: a quick job gets a run permit at once instead of after 8 s.
    let request = request_for(&consumer, provider, &genesis, &fib, 3);
    let (_stream, frame) = ask_on_stream(&client, provider, &request, None).await;
    assert_eq!(frame["delivered"]["output"], "6765", "{frame}");
    assert!(left.elapsed() < Duration::from_secs(4), "the runs held the provider {:?}", left.elapsed());
    let jobs = node.handle().jobs(10).await.unwrap();
    let failed: Vec<_> = jobs.iter().filter(|c| c["state"] == "failed").collect();
    assert_eq!(failed.len(), 2, "{jobs:?}");
    assert!(failed.iter().all(|c| c["detail"].as_str().unwrap().contains("during the run")), "{failed:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_networks_on_one_machine_do_not_see_each_others_providers() {
    let start = |genesis: cue_host::ledger::Genesis,
                 bootstrap: Vec<cue_host::net::Multiaddr>,
                 provide: bool| async move {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = cue_host::datadir::DataDir::resolve(Some(dir.path().to_path_buf()));
        let mut config = cue_host::node::NodeConfig::loopback(data_dir, bootstrap);
        config.sandbox = crate::support::small_sandbox_config();
        config.genesis = Some(genesis);
        config.provide = provide.then(crate::support::quick_provider);
        (cue_host::node::Node::start(config).await.unwrap(), dir)
    };
    let (_, ours) = consumer_with_genesis("network-a");
    let (_, theirs) = consumer_with_genesis("network-b");
    let (mine, _mine_dir) = start(ours.clone(), vec![], true).await;
    let boot = mine.listen_addrs();
    let (other, _other_dir) = start(theirs, boot.clone(), true).await;
    let (consumer, _consumer_dir) = start(ours, boot, false).await;
    assert_ne!(mine.network(), other.network());

    let handle = consumer.handle();
    let found = crate::support::eventually("this network's provider", Duration::from_secs(30), || {
        let handle = handle.clone();
        async move { handle.providers().await.ok().filter(|views| !views.is_empty()) }
    })
    .await;
    // Both providers are connected to the consumer's network of peers; only one is in its market.
    let peers = handle.connected_peers().await.unwrap();
    assert!(peers.contains(&mine.peer_id()), "{peers:?}");
    let ids: Vec<_> = found.iter().map(|view| view.peer_id.clone()).collect();
    assert_eq!(ids, [mine.peer_id().to_string()], "the other network's provider was listed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again: Vec<_> = handle.providers().await.unwrap().iter().map(|view| view.peer_id.clone()).collect();
    assert!(!again.contains(&other.peer_id().to_string()), "{again:?}");
    for node in [consumer, other, mine] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_a_large_result_does_not_hold_the_provider() {
    use futures::AsyncReadExt as _;
    let (dir, _) = keyed_dir();
    let (consumer, genesis) = consumer_with_genesis("stalled-reader-test");
    let node = start_provider(&dir, &genesis).await;
    let words = guest_bytes("wordcount");
    node.handle().publish(words.clone(), "wordcount", "1.0.0").await.unwrap();
    let provider = node.peer_id();
    let client = bare_consumer(&consumer, &node).await;

    // 200,000 distinct words: a result of several MiB, far more than the stream's window.
    let text: Vec<String> = (0..200_000).map(|i| format!("w{i}")).collect();
    let call = format!("count-words(\"{}\")", text.join(" "));
    let mut body = request_for(&consumer, provider, &genesis, &words, 1).body().clone();
    body.input = JobInput::for_call(&call, "count-words");
    body.max_fuel = 100_000_000_000;
    body.max_execution_ms = 10_000;
    body.max_memory_bytes = 64 << 20;
    body.offer = 10 + 2 * 100_000;
    let request = sign_now(&consumer, body);
    let mut stream = client.open_stream(provider, cue_host::node::JOB_PROTOCOL).await.unwrap();
    let frame = serde_json::json!({"request": {"request": hex::encode(request.bytes()), "input": call}});
    crate::contracts_in_process::write_frame(&mut stream, &frame).await;

    // The consumer reads nothing while the provider writes its frames; after the write stall
    // deadline the provider gives up and closes the stream rather than wait for ever.
    tokio::time::sleep(cue_host::node::WRITE_STALL + Duration::from_secs(3)).await;
    let read_all = async {
        loop {
            let mut len = [0u8; 4];
            stream.read_exact(&mut len).await?;
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            stream.read_exact(&mut body).await?;
            let frame: serde_json::Value = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
            if frame.get("outcome").is_some() || frame.get("delivered").is_some() {
                return Ok::<_, std::io::Error>(());
            }
        }
    };
    let delivered = tokio::time::timeout(Duration::from_secs(10), read_all).await;
    assert!(
        !matches!(delivered, Ok(Ok(()))),
        "the provider still held the stream, waiting for its reader, after {:?}",
        cue_host::node::WRITE_STALL
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_store_full_of_its_own_components_refuses_a_strangers_component_and_keeps_its_own() {
    let (dir, _) = keyed_dir();
    let (consumer, genesis) = consumer_with_genesis("full-blob-store-test");
    let fib = guest_bytes("fib");
    // Room for exactly the provider's own component, which it must keep (it published it).
    let cap = fib.len() as u64;
    let node = start_provider_with(&dir, &genesis, |config| config.max_blob_store_bytes = cap).await;
    node.handle().publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let provider = node.peer_id();
    let stranger = crate::support::TestNode::start(&node.listen_addrs(), false).await;
    let hash = guest_bytes("hash");
    stranger.handle().publish(hash.clone(), "hash", "1.0.0").await.unwrap();
    let client = bare_consumer(&consumer, &node).await;

    // Once the provider can find the stranger's blob, fetching it is refused for the cap: a
    // `busy` reject naming the full store, before any byte is written.
    let started = Instant::now();
    let mut job = 0;
    let reject = loop {
        job += 1;
        let request = request_for(&consumer, provider, &genesis, &hash, job);
        let reject = rejected(&crate::funds::compute(&client, provider, &request).await);
        if reject.body().reason == RejectReason::Busy {
            break reject;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never refused for the cap: {:?}",
            reject.body()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(reject.body().message.contains("blob store is full"), "{:?}", reject.body());

    // Its own component still runs.
    let own = request_for(&consumer, provider, &genesis, &fib, 100);
    let (_stream, frame) = ask_on_stream(&client, provider, &own, None).await;
    assert_eq!(frame["delivered"]["output"], "6765", "{frame}");
    drop(client);
    stranger.stop().await;
    node.shutdown().await;

    let blobs = dir.path().join("blobs");
    let held: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .filter(|shard| shard.file_name() != "tmp")
        .flat_map(|shard| std::fs::read_dir(shard.path()).unwrap().flatten())
        .map(|file| file.file_name().into_string().unwrap())
        .collect();
    assert_eq!(held, [cue_host::crypto::Digest::of(&fib).to_string()], "only its own blob is on disk");
    assert_eq!(std::fs::read_dir(blobs.join("tmp")).unwrap().count(), 0, "nothing half-written left");
}
