//! Offers funded before any work, played by strangers against a real provider node on
//! 127.0.0.1: a consumer with nothing to lock is refused before its job runs, and both sides
//! say why; a consumer that takes a quick job's output and resets the stream does not keep its
//! money — the provider claims it from the lock once the deadline passes.

use std::time::Duration;

use cue_host::crypto::Keypair;
use cue_host::protocol::{ComputeReject, JobId, RejectReason, Signed};

use crate::contracts_in_process::{
    ask_on_stream, bare_consumer, consumer_with_genesis, decode_hex, read_frame, request_for, write_frame,
};
use crate::support::{eventually, guest_bytes, keyed_dir};

/// A provider node of `genesis`, with `pay_grace` after each job's time limit.
async fn provider(
    dir: &tempfile::TempDir,
    genesis: &cue_host::ledger::Genesis,
    pay_grace: Duration,
) -> cue_host::node::Node {
    let data_dir = cue_host::datadir::DataDir::resolve(Some(dir.path().to_path_buf()));
    let mut config = cue_host::node::NodeConfig::loopback(data_dir, vec![]);
    config.sandbox = crate::support::small_sandbox_config();
    config.genesis = Some(genesis.clone());
    config.provide = Some(cue_host::node::ProviderSettings { pay_grace, ..crate::support::quick_provider() });
    cue_host::node::Node::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfunded_consumer_is_refused_before_its_job_runs_and_both_sides_say_why() {
    let (dir, _) = keyed_dir();
    let (_rich, genesis) = consumer_with_genesis("unfunded-test");
    let node = provider(&dir, &genesis, Duration::from_secs(60)).await;
    let handle = node.handle();
    let fib = guest_bytes("fib");
    handle.publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let provider_id = node.peer_id();

    // A stranger with no tokens locks its offer anyway: the provider's ledger refuses the lock,
    // and the signed reject says why, with the figures.
    let stranger = Keypair::generate().unwrap();
    let client = bare_consumer(&stranger, &node).await;
    let request = request_for(&stranger, provider_id, &genesis, &fib, 1);
    let (_stream, frame) = ask_on_stream(&client, provider_id, &request, None).await;
    let reject: Signed<ComputeReject> = decode_hex(&frame["rejected"]["reject"]);
    assert_eq!(reject.body().reason, RejectReason::Unfunded, "{:?}", reject.body());
    let message = &reject.body().message;
    assert!(message.contains("balance here is 0") && message.contains("1000"), "{message}");

    // Without a lock at all, the same.
    let bare = request_for(&stranger, provider_id, &genesis, &fib, 2);
    let mut stream = client.open_stream(provider_id, cue_host::node::JOB_PROTOCOL).await.unwrap();
    write_frame(&mut stream, &serde_json::json!({"request": {"request": hex::encode(bare.bytes())}})).await;
    let frame = tokio::time::timeout(Duration::from_secs(30), read_frame(&mut stream)).await.unwrap();
    let reject: Signed<ComputeReject> = decode_hex(&frame["rejected"]["reject"]);
    assert_eq!(reject.body().reason, RejectReason::Unfunded);
    assert!(reject.body().message.contains("no lock funds this request"), "{:?}", reject.body());

    // The provider's side: no contract was made, nothing ran; each reject is in its log.
    assert!(handle.jobs(10).await.unwrap().is_empty(), "no contract for an unfunded job");
    for job in [1, 2] {
        let view = handle.job(JobId([job; 16])).await.unwrap();
        let kinds: Vec<&str> =
            view["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"cue/compute-reject") && !kinds.contains(&"cue/receipt"), "{view}");
    }

    // Cue's own consumer with nothing to lock sends nothing, and says so.
    let (consumer_dir, _) = keyed_dir();
    let data_dir = cue_host::datadir::DataDir::resolve(Some(consumer_dir.path().to_path_buf()));
    let mut config = cue_host::node::NodeConfig::loopback(data_dir, node.listen_addrs());
    config.sandbox = crate::support::small_sandbox_config();
    config.genesis = Some(genesis.clone());
    let consumer = cue_host::node::Node::start(config).await.unwrap();
    let consumer_handle = consumer.handle();
    eventually("the provider", Duration::from_secs(30), || {
        let handle = consumer_handle.clone();
        async move { handle.providers().await.ok().filter(|p| !p.is_empty()) }
    })
    .await;
    let options = cue_host::node::SubmitOptions {
        reference: format!("sha256:{}", cue_host::crypto::Digest::of(&fib)),
        call: "fib(20)".into(),
        offer: Some(500),
        max_fuel: Some(1_000_000),
        max_memory_bytes: 16 << 20,
        timeout: Duration::from_secs(10),
        replicas: 1,
        provider: None,
        max_attempts: 1,
        audit_fuel: 0,
    };
    let error = consumer_handle.submit(options, |_, _| {}).await.unwrap_err().to_string();
    assert!(error.contains("cannot fund the offer of 500") && error.contains("0 available"), "{error}");
    consumer.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_takes_a_quick_result_and_resets_the_stream_still_pays() {
    let (dir, _) = keyed_dir();
    let (rich, genesis) = consumer_with_genesis("reset-test");
    let node = provider(&dir, &genesis, Duration::from_millis(300)).await;
    let handle = node.handle();
    let fib = guest_bytes("fib");
    handle.publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let provider_id = node.peer_id();
    let stranger = Keypair::generate().unwrap();
    crate::funds::give(&node, &rich, genesis.id(), &stranger, 5_000).await;

    let client = bare_consumer(&stranger, &node).await;
    let request = request_for(&stranger, provider_id, &genesis, &fib, 1);
    let (stream, frame) = ask_on_stream(&client, provider_id, &request, None).await;
    assert_eq!(frame["delivered"]["output"], "6765", "{frame}");
    drop(stream); // The result is in hand; the stream is reset and nothing is paid.
    let locked = handle.balance(stranger.peer_id()).await.unwrap().0;
    assert_eq!(locked, 5_000 - 1_000, "the offer is locked");

    let jobs = eventually("the claim", Duration::from_secs(20), || {
        let handle = handle.clone();
        async move {
            let jobs = handle.jobs(10).await.ok()?;
            (jobs.first()?["state"] == "paid").then_some(jobs)
        }
    })
    .await;
    let price = jobs[0]["price"].as_u64().unwrap();
    assert!(jobs[0]["detail"].as_str().unwrap().contains("claimed"), "{}", jobs[0]);
    assert_eq!(handle.balance(provider_id).await.unwrap().0, price, "the provider is paid");
    assert_eq!(handle.balance(stranger.peer_id()).await.unwrap().0, 5_000 - price, "the rest comes back");
    let mut total = 0;
    for peer in [rich.peer_id(), stranger.peer_id(), provider_id] {
        total += handle.balance(peer).await.unwrap().0;
    }
    assert_eq!(total, 1_000_000_000, "no token made or lost");
    assert!(handle.reputation(stranger.peer_id()) < 0.5, "its reputation falls: it did not pay itself");
    node.shutdown().await;
}
