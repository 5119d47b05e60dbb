//! Compute contracts against the protocol itself, in process on 127.0.0.1, with peers built
//! from the bare network layer where a test needs to misbehave: a consumer that never pays
//! recorded as a default, a streamed call that is not the one announced refused, a restarted
//! provider reporting its unfinished contracts, a job stream that carries a paying consumer's
//! next job and not an unpaid one, and a job no provider fits explained rule by rule.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cue_host::crypto::{Keypair, PeerId};
use cue_host::net::{self, RpcResponse};
use cue_host::protocol::{
    ComputeAccept, ComputeRequest, JobId, JobInput, OutcomeAttestations, Signed, Validity, Verdict,
};

use crate::support::{eventually, guest_bytes, keyed_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_never_pays_does_not_keep_its_money() {
    let settings = cue_host::node::ProviderSettings {
        pay_grace: Duration::from_millis(300),
        ..crate::support::quick_provider()
    };
    let (node, consumer, genesis, _dir) = provider_node("default-test", settings).await;
    let handle = node.handle();
    let fib = guest_bytes("fib");
    handle.publish(fib.clone(), "fib", "1.0.0").await.unwrap();

    // A bare peer: it asks, runs, reads the receipt, and never pays.
    let client = bare_consumer(&consumer, &node).await;
    let provider = node.peer_id();
    let request = request_for(&consumer, provider, &genesis, &fib, 3);
    let answer = crate::funds::compute(&client, provider, &request).await;
    let RpcResponse::Accepted(accept) = answer else { panic!("not accepted: {answer:?}") };
    let accept = Signed::<ComputeAccept>::decode(&accept).unwrap();
    let replay = crate::funds::compute(&client, provider, &request).await;
    assert!(matches!(replay, RpcResponse::Rejected(_)), "a replayed request is rejected: {replay:?}");
    let mut stream = client.open_stream(provider, cue_host::node::JOB_PROTOCOL).await.unwrap();
    let start =
        serde_json::to_vec(&serde_json::json!({"start": {"contract": accept.hash().to_string()}})).unwrap();
    use futures::AsyncWriteExt as _;
    stream.write_all(&(start.len() as u32).to_be_bytes()).await.unwrap();
    stream.write_all(&start).await.unwrap();
    let outcome = read_frame(&mut stream).await;
    assert!(outcome.get("outcome").is_some(), "the job ran and delivered: {outcome}");
    // A garbage payment on the job stream is refused, and pays nothing.
    let pay = serde_json::to_vec(&serde_json::json!({"pay": {"transfer": "00ff"}})).unwrap();
    stream.write_all(&(pay.len() as u32).to_be_bytes()).await.unwrap();
    stream.write_all(&pay).await.unwrap();
    let answer = read_frame(&mut stream).await;
    assert!(answer["refused"]["message"].as_str().unwrap().contains("payment refused"), "{answer}");
    stream.close().await.unwrap();

    // Past the deadline the provider claims from the consumer's lock what its contract and
    // receipt make due: it is paid, the consumer gets the rest back and a `default` verdict.
    let contracts = eventually("the claim", Duration::from_secs(20), || {
        let handle = handle.clone();
        async move {
            let jobs = handle.jobs(10).await.ok()?;
            (jobs.first()?["state"] == "paid").then_some(jobs)
        }
    })
    .await;
    assert_eq!(contracts[0]["peer"], consumer.peer_id().to_string());
    assert!(contracts[0]["detail"].as_str().unwrap_or_default().contains("claimed"), "{}", contracts[0]);
    let price = contracts[0]["price"].as_u64().unwrap();
    assert!(price > 0);
    assert_eq!(handle.balance(provider).await.unwrap().0, price, "the provider is paid the price");
    // Two locks were applied (the replay's too); the claimed one gives the rest back.
    let (left, _) = handle.balance(consumer.peer_id()).await.unwrap();
    assert_eq!(left, 1_000_000_000 - price - 1_000, "the consumer keeps the rest and its open lock");
    let consumer_peer: PeerId = consumer.peer_id();
    assert!(handle.reputation(consumer_peer) < 0.5, "a defaulter's reputation falls");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_call_that_is_not_the_one_announced_is_refused() {
    let (node, consumer, genesis, _dir) =
        provider_node("streamed-test", crate::support::quick_provider()).await;
    let words = guest_bytes("wordcount");
    node.handle().publish(words.clone(), "wordcount", "1.0.0").await.unwrap();
    let client = bare_consumer(&consumer, &node).await;
    let provider = node.peer_id();
    let call = format!("count-words(\"{}\")", "a ".repeat(40_000));
    let announce = |job: u8, function: &str, text: &str| {
        let mut request = request_for(&consumer, provider, &genesis, &words, job).body().clone();
        request.input = JobInput::for_call(text, function);
        assert!(matches!(request.input, JobInput::Streamed { .. }));
        sign_now(&consumer, request)
    };

    // A function the component does not export is rejected before anything is accepted.
    let unknown = announce(1, "no-such-function", &call);
    let answer = crate::funds::compute(&client, provider, &unknown).await;
    let RpcResponse::Rejected(reject) = answer else { panic!("accepted an unknown function: {answer:?}") };
    let reject = Signed::<cue_host::protocol::ComputeReject>::decode(&reject).unwrap();
    assert_eq!(reject.body().reason, cue_host::protocol::RejectReason::BadCall, "{:?}", reject.body());

    // Accepted for one call, started with another: refused, and the contract recorded as failed.
    let request = announce(2, "count-words", &call);
    let answer = crate::funds::compute(&client, provider, &request).await;
    let RpcResponse::Accepted(accept) = answer else { panic!("not accepted: {answer:?}") };
    let accept = Signed::<ComputeAccept>::decode(&accept).unwrap();
    let other = call.replacen('a', "b", 1);
    let start = serde_json::json!({"start": {"contract": accept.hash().to_string(), "input": other}});
    let start = serde_json::to_vec(&start).unwrap();
    let mut stream = client.open_stream(provider, cue_host::node::JOB_PROTOCOL).await.unwrap();
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.write_all(&(start.len() as u32).to_be_bytes()).await.unwrap();
    stream.write_all(&start).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains("\"refused\"") && answer.contains("not the one announced"), "{answer}");
    assert!(!answer.contains("\"outcome\""), "nothing ran: {answer}");
    let jobs = node.handle().jobs(10).await.unwrap();
    let contract = jobs.iter().find(|c| c["contract"] == accept.hash().to_string()).unwrap();
    assert_eq!(contract["state"], "failed", "{contract}");
    node.shutdown().await;
}

/// An in-process provider on a network of its own, and the consumer key that network's genesis
/// funds; the temp dir holds the provider's data.
pub(crate) async fn provider_node(
    network_id: &str,
    settings: cue_host::node::ProviderSettings,
) -> (cue_host::node::Node, Keypair, cue_host::ledger::Genesis, tempfile::TempDir) {
    let (provider_dir, _) = keyed_dir();
    let (consumer, genesis) = consumer_with_genesis(network_id);
    let data_dir = cue_host::datadir::DataDir::resolve(Some(provider_dir.path().to_path_buf()));
    let mut config = cue_host::node::NodeConfig::loopback(data_dir, vec![]);
    config.sandbox = crate::support::small_sandbox_config();
    config.genesis = Some(genesis.clone());
    config.provide = Some(settings);
    (cue_host::node::Node::start(config).await.unwrap(), consumer, genesis, provider_dir)
}

/// Reads one job-stream frame (`u32` big-endian length, then JSON).
pub(crate) async fn read_frame(stream: &mut cue_host::net::Stream) -> serde_json::Value {
    use futures::AsyncReadExt as _;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

struct NoRecords;

impl net::RecordValidator for NoRecords {
    fn accept_record(&self, _: &net::DhtKey, _: &[u8], _: Option<&PeerId>) -> bool {
        false
    }
}

/// A consumer key and a network whose genesis gives it 10^9 tokens and the mint.
pub(crate) fn consumer_with_genesis(network_id: &str) -> (Keypair, cue_host::ledger::Genesis) {
    let consumer = Keypair::generate().unwrap();
    let genesis = cue_host::ledger::Genesis {
        network_id: network_id.into(),
        mint_authority: consumer.public(),
        allocations: [(consumer.public(), 1_000_000_000)].into_iter().collect(),
    };
    (consumer, genesis)
}

/// A peer built from the bare network layer that signs requests with `key`.
pub(crate) async fn bare_consumer(key: &Keypair, node: &cue_host::node::Node) -> net::Client {
    bare_consumer_with_events(key, node).await.0
}

/// [`bare_consumer`], with the events of its network (gossip among them).
async fn bare_consumer_with_events(
    key: &Keypair,
    node: &cue_host::node::Node,
) -> (net::Client, tokio::sync::mpsc::Receiver<net::NetEvent>) {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let mut config = net::NetConfig::new(listen, node.listen_addrs(), Arc::new(NoRecords));
    config.network = node.network();
    let (client, events, event_loop) = net::new(key, config).unwrap();
    tokio::spawn(event_loop.run(std::future::pending()));
    client.dial(node.listen_addrs()[0].clone()).await.unwrap();
    (client, events)
}

/// Milliseconds since the epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A request body signed now, acceptable for a minute.
pub(crate) fn sign_now(key: &Keypair, body: ComputeRequest) -> Signed<ComputeRequest> {
    crate::funds::remember(key);
    Signed::sign(key, body, Validity::starting(now_ms(), 60_000)).unwrap()
}

pub(crate) fn request_for(
    key: &Keypair,
    provider: PeerId,
    genesis: &cue_host::ledger::Genesis,
    component: &[u8],
    job: u8,
) -> Signed<ComputeRequest> {
    crate::funds::remember(key);
    let now = now_ms();
    let body = ComputeRequest {
        job_id: JobId([job; 16]),
        provider: provider.public_key(),
        genesis: genesis.id(),
        component: cue_host::crypto::Digest::of(component),
        reference: None,
        input: JobInput::Inline("fib(20)".into()),
        offer: 1_000,
        max_fuel: 1_000_000,
        max_memory_bytes: 16 << 20,
        max_execution_ms: 1_000,
    };
    Signed::sign(key, body, Validity::starting(now, 60_000)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_provider_reports_unfinished_contracts_and_allow_lists_hold() {
    let (provider_dir, provider_id) = keyed_dir();
    let (consumer, genesis) = consumer_with_genesis("restart-test");
    let start = |dir: tempfile::TempDir| {
        let genesis = genesis.clone();
        async move {
            let data_dir = cue_host::datadir::DataDir::resolve(Some(dir.path().to_path_buf()));
            let mut config = cue_host::node::NodeConfig::loopback(data_dir, vec![]);
            config.sandbox = crate::support::small_sandbox_config();
            config.genesis = Some(genesis);
            config.provide = Some(cue_host::node::ProviderSettings {
                allowed_publishers: vec![provider_id],
                ..crate::support::quick_provider()
            });
            (cue_host::node::Node::start(config).await.unwrap(), dir)
        }
    };
    let (node, dir) = start(provider_dir).await;
    let fib = guest_bytes("fib");
    node.handle().publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let stranger = crate::support::TestNode::start(&node.listen_addrs(), false).await;
    let hash = guest_bytes("hash");
    stranger.handle().publish(hash.clone(), "hash", "1.0.0").await.unwrap();
    let client = bare_consumer(&consumer, &node).await;

    let foreign = request_for(&consumer, node.peer_id(), &genesis, &hash, 1);
    let answer = crate::funds::compute(&client, node.peer_id(), &foreign).await;
    let RpcResponse::Rejected(reject) = answer else {
        panic!("a foreign publisher's component ran: {answer:?}")
    };
    let reject = Signed::<cue_host::protocol::ComputeReject>::decode(&reject).unwrap();
    assert_eq!(reject.body().reason, cue_host::protocol::RejectReason::Component, "{:?}", reject.body());

    let own = request_for(&consumer, node.peer_id(), &genesis, &fib, 2);
    let answer = crate::funds::compute(&client, node.peer_id(), &own).await;
    assert!(matches!(answer, RpcResponse::Accepted(_)), "{answer:?}");
    drop(client);
    node.shutdown().await;

    let (restarted, _dir) = start(dir).await;
    let jobs = restarted.handle().jobs(10).await.unwrap();
    let accepted: Vec<_> = jobs.iter().filter(|c| c["job"] == JobId([2; 16]).to_string()).collect();
    assert_eq!(accepted.len(), 1, "{jobs:?}");
    assert_eq!(accepted[0]["state"], "failed");
    assert!(accepted[0]["detail"].as_str().unwrap().contains("restarted"), "{:?}", accepted[0]);
    stranger.stop().await;
    restarted.shutdown().await;
}

/// Writes one job-stream frame.
pub(crate) async fn write_frame(stream: &mut cue_host::net::Stream, frame: &serde_json::Value) {
    use futures::AsyncWriteExt as _;
    let body = serde_json::to_vec(frame).unwrap();
    stream.write_all(&(body.len() as u32).to_be_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    stream.flush().await.unwrap();
}

/// Opens a job stream, sends `request` in its first frame, and answers the frames that follow
/// up to the first that is not a guest event.
pub(crate) async fn ask_on_stream(
    client: &net::Client,
    provider: PeerId,
    request: &Signed<ComputeRequest>,
    input: Option<&str>,
) -> (cue_host::net::Stream, serde_json::Value) {
    let mut stream = client.open_stream(provider, cue_host::node::JOB_PROTOCOL).await.unwrap();
    let lock = crate::funds::lock_for(request);
    let mut frame = serde_json::json!({"request": {
        "request": hex::encode(request.bytes()),
        "lock": hex::encode(lock.bytes()),
    }});
    if let Some(input) = input {
        frame["request"]["input"] = input.into();
    }
    write_frame(&mut stream, &frame).await;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), read_frame(&mut stream)).await.unwrap();
        if frame.get("event").is_none() {
            if !lock_applied(&frame) {
                crate::funds::give_back(&lock);
            }
            return (stream, frame);
        }
    }
}

/// Whether a provider's first answer shows it applied the request's lock: a contract, or a
/// reject for a reason checked after the lock (the component, the call).
fn lock_applied(frame: &serde_json::Value) -> bool {
    use cue_host::protocol::{ComputeReject, RejectReason};
    match frame.get("rejected") {
        Some(rejected) => matches!(
            decode_hex::<ComputeReject>(&rejected["reject"]).body().reason,
            RejectReason::Component | RejectReason::BadCall
        ),
        None => frame.get("refused").is_none(),
    }
}

pub(crate) fn decode_hex<T: cue_host::protocol::EventBody>(value: &serde_json::Value) -> Signed<T> {
    let signed = Signed::<T>::decode(&hex::decode(value.as_str().unwrap()).unwrap()).unwrap();
    signed.verify_signature().unwrap();
    signed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_requested_on_its_stream_is_contracted_with_its_outcome_or_before_it_runs_long() {
    let (node, consumer, genesis, _dir) =
        provider_node("stream-request-test", crate::support::quick_provider()).await;
    let fib = guest_bytes("fib");
    node.handle().publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let spin = guest_bytes("hostile-infinite-loop");
    node.handle().publish(spin.clone(), "spin", "1.0.0").await.unwrap();
    let words = guest_bytes("wordcount");
    node.handle().publish(words.clone(), "wordcount", "1.0.0").await.unwrap();
    let client = bare_consumer(&consumer, &node).await;
    let provider = node.peer_id();
    let contract_of = |jobs: &[serde_json::Value], hash: String| {
        jobs.iter().find(|c| c["contract"] == hash).cloned().unwrap_or_else(|| panic!("{hash}: {jobs:?}"))
    };

    // A quick job: its contract comes with its outcome, both stored before they are sent.
    let request = request_for(&consumer, provider, &genesis, &fib, 1);
    let (_stream, frame) = ask_on_stream(&client, provider, &request, None).await;
    let delivered = &frame["delivered"];
    let accept: Signed<ComputeAccept> = decode_hex(&delivered["accept"]);
    assert_eq!(accept.body().request, request.hash());
    let receipt: Signed<cue_host::protocol::Receipt> = decode_hex(&delivered["receipt"]);
    assert_eq!(receipt.body().contract, accept.hash());
    assert_eq!(delivered["output"], "6765");
    let jobs = node.handle().jobs(10).await.unwrap();
    let row = contract_of(&jobs, accept.hash().to_string());
    assert_eq!(row["state"], "delivered", "{row}");
    assert_eq!(row["receipt"], receipt.hash().to_string(), "{row}");

    // The same request again is a replay: rejected, signed, and nothing runs.
    let (_stream, frame) = ask_on_stream(&client, provider, &request, None).await;
    let reject: Signed<cue_host::protocol::ComputeReject> = decode_hex(&frame["rejected"]["reject"]);
    assert_eq!(reject.body().reason, cue_host::protocol::RejectReason::Invalid, "{:?}", reject.body());

    // A request signed by someone else than the peer sending it is refused, unsigned.
    let stranger = Keypair::generate().unwrap();
    let foreign = request_for(&stranger, provider, &genesis, &fib, 2);
    let (_stream, frame) = ask_on_stream(&client, provider, &foreign, None).await;
    assert!(frame["refused"]["message"].as_str().unwrap().contains("its signer"), "{frame}");

    // A streamed call that is not the one announced: rejected as a bad call before any
    // contract exists (nothing was told or stored of one).
    let call = format!("count-words(\"{}\")", "a ".repeat(40_000));
    let mut body = request_for(&consumer, provider, &genesis, &words, 3).body().clone();
    body.input = JobInput::for_call(&call, "count-words");
    let streamed = sign_now(&consumer, body);
    let other = call.replacen('a', "b", 1);
    let (_stream, frame) = ask_on_stream(&client, provider, &streamed, Some(&other)).await;
    let reject: Signed<cue_host::protocol::ComputeReject> = decode_hex(&frame["rejected"]["reject"]);
    assert_eq!(reject.body().reason, cue_host::protocol::RejectReason::BadCall, "{:?}", reject.body());
    assert!(reject.body().message.contains("not the one announced"), "{:?}", reject.body());
    let jobs = node.handle().jobs(10).await.unwrap();
    assert!(jobs.iter().all(|c| c["job"] != JobId([3; 16]).to_string()), "no contract: {jobs:?}");

    // A long job: its contract is stored and told while it runs, then its outcome (here the
    // time limit) comes with the receipt.
    let mut body = request_for(&consumer, provider, &genesis, &spin, 4).body().clone();
    body.input = JobInput::Inline("run()".into());
    body.max_fuel = 1_000_000_000_000;
    body.max_execution_ms = 600;
    body.offer = 10 + 2 * 1_000_000;
    let long = sign_now(&consumer, body);
    let (mut stream, frame) = ask_on_stream(&client, provider, &long, None).await;
    let accept: Signed<ComputeAccept> = decode_hex(&frame["contract"]["accept"]);
    assert_eq!(accept.body().request, long.hash());
    let jobs = node.handle().jobs(10).await.unwrap();
    assert_eq!(contract_of(&jobs, accept.hash().to_string())["state"], "accepted", "stored while it runs");
    let outcome = loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), read_frame(&mut stream)).await.unwrap();
        if frame.get("event").is_none() {
            break frame;
        }
    };
    let receipt: Signed<cue_host::protocol::Receipt> = decode_hex(&outcome["outcome"]["receipt"]);
    assert_eq!(receipt.body().contract, accept.hash());
    assert!(
        matches!(&receipt.body().outcome, cue_host::protocol::RunOutcome::Failed { kind, .. } if kind == "timeout"),
        "{:?}",
        receipt.body().outcome
    );
    let jobs = node.handle().jobs(10).await.unwrap();
    assert_eq!(contract_of(&jobs, accept.hash().to_string())["state"], "delivered");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_paid_on_carries_its_consumers_next_job_and_an_unpaid_one_does_not() {
    use cue_host::protocol::Receipt;
    let (node, consumer, genesis, _dir) =
        provider_node("stream-reuse-test", crate::support::quick_provider()).await;
    let fib = guest_bytes("fib");
    node.handle().publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let (client, mut events) = bare_consumer_with_events(&consumer, &node).await;
    client.subscribe(cue_host::node::REPUTATION_TOPIC).await.unwrap();
    let provider = node.peer_id();
    // Pays a delivered job on the stream as Cue's consumer does: its lock released, paying
    // what the receipt makes due.
    let pay = |request: &Signed<ComputeRequest>, delivered: &serde_json::Value| {
        let accept: Signed<ComputeAccept> = decode_hex(&delivered["accept"]);
        let receipt: Signed<Receipt> = decode_hex(&delivered["receipt"]);
        let price = accept.body().price(receipt.body().fuel_used, 1_000);
        let release = crate::funds::release_for(request, price, receipt.hash());
        serde_json::json!({"pay": {"transfer": hex::encode(release.bytes())}})
    };

    let first = request_for(&consumer, provider, &genesis, &fib, 1);
    let (mut stream, frame) = ask_on_stream(&client, provider, &first, None).await;
    write_frame(&mut stream, &pay(&first, &frame["delivered"])).await;
    assert_eq!(read_frame(&mut stream).await, "paid");

    // The same stream takes the next request without being opened again.
    let second = request_for(&consumer, provider, &genesis, &fib, 2);
    let lock = crate::funds::lock_for(&second);
    let next = serde_json::json!({"request": {
        "request": hex::encode(second.bytes()),
        "lock": hex::encode(lock.bytes()),
    }});
    write_frame(&mut stream, &next).await;
    let frame = tokio::time::timeout(Duration::from_secs(30), read_frame(&mut stream)).await.unwrap();
    let accept: Signed<ComputeAccept> = decode_hex(&frame["delivered"]["accept"]);
    assert_eq!(accept.body().request, second.hash());
    write_frame(&mut stream, &pay(&second, &frame["delivered"])).await;
    assert_eq!(read_frame(&mut stream).await, "paid");
    let jobs = node.handle().jobs(10).await.unwrap();
    assert_eq!(jobs.iter().filter(|c| c["state"] == "paid").count(), 2, "{jobs:?}");

    // The provider's `completed` verdicts on both contracts are signed in sets (one signature
    // for the verdicts of ~50 ms) and gossiped; each job's view shows its set.
    let contracts: HashSet<String> = jobs
        .iter()
        .filter(|c| c["state"] == "paid")
        .map(|c| c["contract"].as_str().unwrap().to_owned())
        .collect();
    let mut attested = HashSet::new();
    let gossip = async {
        while attested.len() < 2 {
            let Some(net::NetEvent::Gossip { topic, data, .. }) = events.recv().await else { continue };
            if topic != cue_host::node::REPUTATION_TOPIC {
                continue;
            }
            let set = Signed::<OutcomeAttestations>::decode(&data).unwrap();
            set.verify_signature().unwrap();
            assert_eq!(set.header().signer, provider.public_key());
            for attestation in &set.body().attestations {
                assert_eq!(
                    (attestation.subject, attestation.verdict),
                    (consumer.public(), Verdict::Completed)
                );
                assert!(contracts.contains(&attestation.contract.to_string()), "{contracts:?}");
                attested.insert(attestation.contract);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), gossip)
        .await
        .expect("the provider's attestations are gossiped");
    for job in jobs.iter().filter(|c| c["state"] == "paid") {
        let id = job["job"].as_str().unwrap().parse().unwrap();
        let view = node.handle().job(id).await.unwrap();
        let kinds: Vec<&str> =
            view["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"cue/outcome-attestations"), "{view}");
    }

    // A payment refused on the stream (here: not even hex) ends it.
    let third = request_for(&consumer, provider, &genesis, &fib, 3);
    let lock = crate::funds::lock_for(&third);
    let next = serde_json::json!({"request": {
        "request": hex::encode(third.bytes()),
        "lock": hex::encode(lock.bytes()),
    }});
    write_frame(&mut stream, &next).await;
    let frame = tokio::time::timeout(Duration::from_secs(30), read_frame(&mut stream)).await.unwrap();
    assert!(frame.get("delivered").is_some(), "{frame}");
    write_frame(&mut stream, &serde_json::json!({"pay": {"transfer": "not hex"}})).await;
    let refused = read_frame(&mut stream).await;
    assert!(refused.get("refused").is_some(), "{refused}");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(30),
        futures::AsyncReadExt::read_to_end(&mut stream, &mut rest),
    );
    assert!(read.await.is_ok_and(|r| r.is_ok()) && rest.is_empty(), "the provider closes the stream");
    node.shutdown().await;
}

/// A job no provider fits says why, per provider, with the figures (and nothing is asked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_provider_fits_says_which_rule_failed_and_by_how_much() {
    let (provider, consumer_key, genesis, _dir) =
        provider_node("unfit-test", crate::support::quick_provider()).await;
    let _ = consumer_key;
    let (consumer_dir, _) = crate::support::keyed_dir();
    let data_dir = cue_host::datadir::DataDir::resolve(Some(consumer_dir.path().to_path_buf()));
    let mut config = cue_host::node::NodeConfig::loopback(data_dir, provider.listen_addrs());
    config.sandbox = crate::support::small_sandbox_config();
    config.genesis = Some(genesis);
    let consumer = cue_host::node::Node::start(config).await.unwrap();
    let fib = guest_bytes("fib");
    provider.handle().publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let options = cue_host::node::SubmitOptions {
        reference: format!("sha256:{}", cue_host::crypto::Digest::of(&fib)),
        call: "fib(30)".into(),
        offer: Some(1_000),
        max_fuel: Some(10_000_000_000),
        max_memory_bytes: 16 << 20,
        timeout: Duration::from_secs(5),
        replicas: 1,
        provider: Some(provider.peer_id()),
        max_attempts: 3,
        audit_fuel: cue_host::node::DEFAULT_AUDIT_FUEL,
    };
    let error = consumer.handle().submit(options, |_, _| {}).await.unwrap_err();
    let cue_host::node::NodeError::NoProvider { found, unfit } = &error else { panic!("{error}") };
    assert_eq!((*found, unfit.len()), (1, 1), "{error}");
    assert_eq!(unfit[0].provider, provider.peer_id().to_string());
    // quick_provider: base fee 10, 2 per million fuel.
    assert_eq!(
        unfit[0].reason,
        "offer 1,000 is below the worst case 20,010 = base 10 + 2 per Mfuel × max fuel 10,000,000,000; \
         lower --max-fuel or raise --pay"
    );
    assert!(error.to_string().contains("1 found, none fits"), "{error}");
    consumer.shutdown().await;
    provider.shutdown().await;
}
