//! Providers that lie, in process on 127.0.0.1 next to an honest one: a claimed speed it does
//! not deliver, a lock released unpaid then paid late, failures made up at the whole fuel
//! budget. Each is caught by what the consumer observes, and costs the liar trust or earnings.

use std::time::Duration;

use cue_host::crypto::PeerId;
use cue_host::net::{RpcRequest, RpcResponse};
use cue_host::protocol::{ComputeAccept, Signed};

use crate::contracts_in_process::{ask_on_stream, bare_consumer, decode_hex, provider_node, request_for};
use crate::support::{eventually, guest_bytes};

/// An honest provider, a provider with `fault` injected, and a consumer funded in their
/// network, all in process on 127.0.0.1.
struct HonestAndLiar {
    honest: cue_host::node::Node,
    liar: cue_host::node::Node,
    consumer: cue_host::node::Node,
    _dirs: [tempfile::TempDir; 3],
}

async fn honest_and_liar(network_id: &str, fault: cue_host::node::FaultInjection) -> HonestAndLiar {
    let (consumer_dir, consumer_id) = crate::support::keyed_dir();
    let genesis = cue_host::ledger::Genesis {
        network_id: network_id.into(),
        mint_authority: consumer_id.public_key(),
        allocations: [(consumer_id.public_key(), 1_000_000_000)].into_iter().collect(),
    };
    let start = |dir: &tempfile::TempDir, boot: Vec<cue_host::net::Multiaddr>, provide| {
        let data_dir = cue_host::datadir::DataDir::resolve(Some(dir.path().to_path_buf()));
        let mut config = cue_host::node::NodeConfig::loopback(data_dir, boot);
        config.sandbox = crate::support::small_sandbox_config();
        config.genesis = Some(genesis.clone());
        config.provide = provide;
        cue_host::node::Node::start(config)
    };
    let (honest_dir, liar_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let honest = start(&honest_dir, vec![], Some(crate::support::quick_provider())).await.unwrap();
    let boot = honest.listen_addrs();
    let liar_settings =
        cue_host::node::ProviderSettings { fault: Some(fault), ..crate::support::quick_provider() };
    let liar = start(&liar_dir, boot.clone(), Some(liar_settings)).await.unwrap();
    let consumer = start(&consumer_dir, boot, None).await.unwrap();
    HonestAndLiar { honest, liar, consumer, _dirs: [consumer_dir, honest_dir, liar_dir] }
}

/// A provider claiming a speed it does not deliver ranks first only until a consumer has seen
/// it work: then its observed rate, and the trust its claim costs, put it below an honest one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_claiming_a_speed_it_does_not_deliver_ranks_below_an_honest_one_once_seen() {
    let HonestAndLiar { honest, liar, consumer, _dirs } =
        honest_and_liar("overclaim-test", cue_host::node::FaultInjection::OverclaimSpeed).await;
    let nbody = guest_bytes("nbody");
    honest.handle().publish(nbody.clone(), "nbody", "1.0.0").await.unwrap();
    let handle = consumer.handle();
    let ranked = |handle: cue_host::node::NodeHandle| async move {
        let views = handle.providers().await.ok().filter(|views| views.len() == 2)?;
        Some(views.iter().map(|v| (v.peer_id.clone(), v.observed_fuel_per_second)).collect::<Vec<_>>())
    };
    let before =
        crate::support::eventually("both providers", Duration::from_secs(30), || ranked(handle.clone()))
            .await;
    assert_eq!(
        before[0],
        (liar.peer_id().to_string(), None),
        "a claim alone ranks the liar first: {before:?}"
    );

    let options = cue_host::node::SubmitOptions {
        reference: format!("sha256:{}", cue_host::crypto::Digest::of(&nbody)),
        call: "energy-after(1000000)".into(),
        offer: None,
        max_fuel: Some(5_000_000_000),
        max_memory_bytes: 16 << 20,
        timeout: Duration::from_secs(10),
        replicas: 1,
        provider: Some(liar.peer_id()),
        max_attempts: 1,
        audit_fuel: cue_host::node::DEFAULT_AUDIT_FUEL,
    };
    let report = handle.submit(options, |_, _| {}).await.unwrap();
    assert!(report.fuel >= cue_host::market::MIN_OBSERVED_FUEL, "{report:?}");

    let after = ranked(handle.clone()).await.expect("both providers");
    assert_eq!(after[0].0, honest.peer_id().to_string(), "seen, the liar ranks below: {after:?}");
    let seen = after[1].1.expect("the liar's observed rate");
    let views = handle.providers().await.unwrap();
    let claimed = views[1].manifest["fuel_per_second"].as_u64().unwrap();
    // The quick benchmark measures low, so the claim is not 1000× what is seen here; it is far
    // above the tolerance that costs trust.
    assert!(claimed as f64 > cue_host::market::OVERCLAIM * seen as f64, "claimed {claimed}, seen {seen}");
    for node in [consumer, liar, honest] {
        node.shutdown().await;
    }
}

/// A contract recorded as a default that later receives its payment becomes paid, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_releases_its_lock_unpaid_defaults_with_evidence_and_a_late_payment_ends_paid() {
    use cue_host::protocol::{PaymentReference, Receipt};
    let settings = cue_host::node::ProviderSettings {
        pay_grace: Duration::from_millis(300),
        ..crate::support::quick_provider()
    };
    let (node, consumer, genesis, _dir) = provider_node("late-payment-test", settings).await;
    let handle = node.handle();
    let fib = guest_bytes("fib");
    handle.publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let client = bare_consumer(&consumer, &node).await;
    let provider = node.peer_id();
    let request = request_for(&consumer, provider, &genesis, &fib, 7);
    let (_stream, frame) = ask_on_stream(&client, provider, &request, None).await;
    let receipt: Signed<Receipt> = decode_hex(&frame["delivered"]["receipt"]);
    let accept: Signed<ComputeAccept> = decode_hex(&frame["delivered"]["accept"]);
    let state = |handle: cue_host::node::NodeHandle, wanted: &'static str| async move {
        let jobs = handle.jobs(10).await.ok()?;
        (jobs.first()?["state"] == wanted).then_some(jobs)
    };
    // The consumer takes its lock back paying nothing: nothing is left to claim, so the
    // contract ends defaulted, the consumer's own signed release the evidence.
    let unpaid = crate::funds::release_for(&request, 0, receipt.hash());
    let answer = client.request(provider, RpcRequest::Pay(unpaid.bytes().to_vec())).await.unwrap();
    assert!(matches!(answer, RpcResponse::Paid), "the release is applied: {answer:?}");
    eventually("the default", Duration::from_secs(20), || state(handle.clone(), "defaulted")).await;
    assert_eq!(handle.balance(provider).await.unwrap().0, 0);

    let price = accept.body().price(receipt.body().fuel_used, request.body().offer);
    let reference = Some(PaymentReference::Receipt(receipt.hash()));
    let transfer = crate::funds::transfer(&consumer, genesis.id(), provider.public_key(), price, reference);
    let answer = client.request(provider, RpcRequest::Pay(transfer.bytes().to_vec())).await.unwrap();
    assert!(matches!(answer, RpcResponse::Paid), "{answer:?}");
    let jobs =
        eventually("the late payment", Duration::from_secs(10), || state(handle.clone(), "paid")).await;
    assert_eq!(jobs[0]["payment"], transfer.hash().to_string());
    // Told again: acknowledged (it is known), counted once.
    let again = client.request(provider, RpcRequest::Pay(transfer.bytes().to_vec())).await.unwrap();
    assert!(matches!(again, RpcResponse::Paid), "{again:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (balance, _) = handle.balance(provider).await.unwrap();
    assert_eq!(balance, transfer.body().amount, "paid once");
    assert_eq!(handle.jobs(10).await.unwrap()[0]["payment"], transfer.hash().to_string());
    node.shutdown().await;
}

/// A provider that makes up failures at the whole fuel budget is not paid for them: its
/// consumer re-runs each failure it alone reports, refutes it, and trusts it less. Over 100
/// jobs it earns nothing while an honest provider earns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_failures_earn_nothing_and_cost_trust_over_a_hundred_jobs() {
    let HonestAndLiar { honest, liar, consumer, _dirs } =
        honest_and_liar("failing-test", cue_host::node::FaultInjection::FailAtMaxFuel).await;
    let fib = guest_bytes("fib");
    honest.handle().publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let handle = consumer.handle();
    let job = |provider: PeerId| cue_host::node::SubmitOptions {
        reference: format!("sha256:{}", cue_host::crypto::Digest::of(&fib)),
        call: "fib(25)".into(),
        offer: None,
        max_fuel: Some(10_000_000),
        max_memory_bytes: 16 << 20,
        timeout: Duration::from_secs(5),
        replicas: 1,
        provider: Some(provider),
        max_attempts: 1,
        audit_fuel: cue_host::node::DEFAULT_AUDIT_FUEL,
    };
    let (mut delivered, mut refuted) = (0, 0);
    for i in 0..100 {
        let provider = if i % 2 == 0 { honest.peer_id() } else { liar.peer_id() };
        match handle.submit(job(provider), |_, _| {}).await {
            Ok(report) => {
                assert_eq!(report.result, 75_025, "{report:?}");
                delivered += 1;
            }
            Err(e) => {
                assert!(e.to_string().contains("refuted by a re-run"), "{e}");
                refuted += 1;
            }
        }
    }
    assert_eq!((delivered, refuted), (50, 50));
    let earned = |peer: PeerId| {
        let handle = handle.clone();
        async move { handle.balance(peer).await.unwrap().0 }
    };
    let (honest_earned, liar_earned) = (earned(honest.peer_id()).await, earned(liar.peer_id()).await);
    assert!(honest_earned > 0 && liar_earned == 0, "honest {honest_earned}, liar {liar_earned}");
    let (honest_trust, liar_trust) = (handle.reputation(honest.peer_id()), handle.reputation(liar.peer_id()));
    assert!(liar_trust < 0.5 && liar_trust < honest_trust, "liar {liar_trust}, honest {honest_trust}");
    for node in [consumer, liar, honest] {
        node.shutdown().await;
    }
}
