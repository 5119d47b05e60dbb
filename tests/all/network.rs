//! The peer-to-peer layer between real nodes on 127.0.0.1: discovery of many providers over
//! the sharded DHT, publishing and fetching components, restarts, and `cue node` processes
//! driven through the CLI.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::{NodeProcess, TestNode, eventually, guest, guest_bytes, keyed_dir, stderr, stdout};

/// More providers than libp2p-kad keeps per key (20): every one must be found.
const PROVIDERS: usize = 26;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_providers_than_a_dht_key_holds_are_all_discovered() {
    let bootstrap = TestNode::start(&[], true).await;
    let boot = bootstrap.addrs();
    let mut providers = vec![];
    for _ in 1..PROVIDERS {
        providers.push(TestNode::start(&boot, true).await);
    }
    let consumer = TestNode::start(&boot, false).await;
    let mut expected: HashSet<String> = providers.iter().map(|p| p.node.peer_id().to_string()).collect();
    expected.insert(bootstrap.node.peer_id().to_string());
    let handle = consumer.handle();
    let found = eventually("every provider to be listed", Duration::from_secs(90), || {
        let handle = handle.clone();
        let expected = expected.clone();
        async move {
            let views = handle.providers().await.ok()?;
            let ids: HashSet<String> = views.iter().map(|v| v.peer_id.clone()).collect();
            (ids == expected).then_some(views)
        }
    })
    .await;
    assert_eq!(found.len(), PROVIDERS);
    for view in &found {
        let manifest = &view.manifest;
        assert!(manifest["fuel_per_second"].as_u64().unwrap() > 0, "{manifest}");
        assert_eq!(manifest["policy"]["price_per_mfuel"], 2);
        assert!(view.latency_ms >= 0.0 && view.latency_ms < 5_000.0);
        assert_eq!(view.reputation, 0.5, "neutral until contracts exist");
        assert!(view.score > 0.0);
    }
    assert!(found.windows(2).all(|w| w[0].score >= w[1].score), "best first");
    consumer.stop().await;
    for provider in providers {
        provider.stop().await;
    }
    bootstrap.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_one_node_resolve_by_semver_and_fetch_on_another() {
    let publisher = TestNode::start(&[], false).await;
    let boot = publisher.addrs();
    let relay = TestNode::start(&boot, false).await;
    let consumer = TestNode::start(&relay.addrs(), false).await;
    let p = publisher.handle();
    let (fib, hash, wordcount) = (guest_bytes("fib"), guest_bytes("hash"), guest_bytes("wordcount"));
    p.publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    let v12 = p.publish(hash.clone(), "fib", "1.2.0").await.unwrap();
    p.publish(wordcount.clone(), "fib", "2.0.0").await.unwrap();
    p.publish(fib.clone(), "fib", "1.3.0-rc.1").await.unwrap();
    let again = p.publish(hash.clone(), "fib", "1.2.0").await.unwrap();
    assert!(again.already_published, "re-publishing the same version is idempotent");
    let conflict = p.publish(fib.clone(), "fib", "1.2.0").await.unwrap_err();
    assert!(conflict.to_string().contains("already the component"), "{conflict}");

    let c = consumer.handle();
    let fetched = eventually("fib@^1 to resolve", Duration::from_secs(30), || {
        let c = c.clone();
        async move { c.fetch("fib@^1", |_, _| {}).await.ok() }
    })
    .await;
    assert_eq!(fetched.version.as_deref(), Some("1.2.0"), "highest ^1, pre-releases excluded");
    assert_eq!(fetched.sha256, v12.sha256);
    assert_eq!(fetched.publisher.as_deref(), Some(publisher.node.peer_id().to_string().as_str()));
    assert_eq!(std::fs::read(&fetched.path).unwrap(), hash, "the bytes arrived whole");
    assert_ne!(fetched.source, "local");

    let exact = c.fetch("fib@=1.0.0", |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(&exact.path).unwrap(), fib);
    let two = c.fetch("fib@^2", |_, _| {}).await.unwrap();
    assert_eq!(two.version.as_deref(), Some("2.0.0"));
    let by_hash = relay.handle().fetch(&format!("sha256:{}", two.sha256), |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(&by_hash.path).unwrap(), wordcount);
    let again = c.fetch("fib@^1", |_, _| {}).await.unwrap();
    assert_eq!(again.source, "local", "a fetched blob is kept");

    let missing = c.fetch("fib@^9", |_, _| {}).await.unwrap_err();
    assert!(missing.to_string().contains("no published version of fib matches ^9"), "{missing}");
    let bad = c.fetch("Fib@^1", |_, _| {}).await.unwrap_err();
    assert!(matches!(bad, cue_host::node::NodeError::Invalid(_)), "{bad}");

    // Another key claims the name on its own node: the consumer, which already knows the
    // name's owner, never takes that key's versions.
    let squatter = TestNode::start(&boot, false).await;
    squatter.handle().publish(wordcount.clone(), "fib", "3.0.0").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let refused = c.fetch("fib@^3", |_, _| {}).await.unwrap_err();
    assert!(refused.to_string().contains("no published version of fib matches ^3"), "{refused}");
    for node in [squatter, consumer, relay, publisher] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_identity_store_and_announcements() {
    let first = TestNode::start(&[], true).await;
    let peer_id = first.node.peer_id();
    let published = first.handle().publish(guest_bytes("fib"), "fib", "1.0.0").await.unwrap();
    let manifest_hash = first.handle().manifest().unwrap().hash();
    let dir = first.stop().await;

    let restarted = TestNode::start_in(dir, &[], true).await;
    assert_eq!(restarted.node.peer_id(), peer_id, "same key");
    assert_eq!(restarted.handle().manifest().unwrap().hash(), manifest_hash, "a fresh manifest is reused");
    let local = restarted.handle().fetch("fib@1", |_, _| {}).await.unwrap();
    assert_eq!((local.source.as_str(), local.sha256.as_str()), ("local", published.sha256.as_str()));

    let consumer = TestNode::start(&restarted.addrs(), false).await;
    let c = consumer.handle();
    let fetched = eventually("the restarted node's component", Duration::from_secs(30), || {
        let c = c.clone();
        async move { c.fetch("fib@^1", |_, _| {}).await.ok() }
    })
    .await;
    assert_eq!(fetched.sha256, published.sha256);
    let providers = c.providers().await.unwrap();
    assert_eq!(providers.iter().map(|p| p.peer_id.clone()).collect::<Vec<_>>(), vec![peer_id.to_string()]);
    consumer.stop().await;
    restarted.stop().await;
}

#[test]
fn five_provider_processes_and_a_consumer_work_through_the_cli() {
    let first = NodeProcess::start(&["--provide"]);
    let boot = first.listen[0].clone();
    let mut providers = vec![first];
    for _ in 1..5 {
        providers.push(NodeProcess::start(&["--provide", "--bootstrap", &boot]));
    }
    let mut consumer = NodeProcess::start(&["--bootstrap", &boot]);
    let expected: HashSet<String> = providers.iter().map(|p| p.peer_id.clone()).collect();

    let started = std::time::Instant::now();
    let listed = loop {
        let output = consumer.cue(&["providers", "--json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let ids: HashSet<String> =
            list.as_array().unwrap().iter().map(|p| p["peer_id"].as_str().unwrap().to_owned()).collect();
        if ids == expected {
            break list;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "providers listed: {ids:?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    for provider in listed.as_array().unwrap() {
        for field in ["peer_id", "manifest", "latency_ms", "reputation", "score"] {
            assert!(!provider[field].is_null(), "{field} missing in {provider}");
        }
        assert!(provider["manifest"]["fuel_per_second"].as_u64().unwrap() > 0);
    }
    let table = consumer.cue(&["providers"]);
    assert!(stdout(&table).contains(&providers[2].peer_id), "{}", stdout(&table));

    let fib = guest("fib");
    let published =
        providers[1].cue(&["publish", fib.to_str().unwrap(), "--name", "fib", "--version", "1.4.2"]);
    assert!(published.status.success(), "{}", stderr(&published));
    assert!(stdout(&published).contains("published fib@1.4.2"), "{}", stdout(&published));

    let started = std::time::Instant::now();
    let fetched = loop {
        let output = consumer.cue(&["fetch", "fib@^1", "--json"]);
        if output.status.success() {
            break serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("JSON");
        }
        assert!(started.elapsed() < Duration::from_secs(30), "fetch failed: {}", stderr(&output));
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(fetched["version"], "1.4.2");
    assert_eq!(fetched["publisher"], providers[1].peer_id.as_str());
    let path = fetched["path"].as_str().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), std::fs::read(&fib).unwrap());

    let refused = consumer.cue(&["fetch", "fib@^7"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("no published version of fib matches ^7"), "{}", stderr(&refused));

    let status = consumer.terminate().expect("the node stops on SIGTERM");
    assert!(status.success(), "clean exit: {status:?}");
    assert!(!consumer.cue.data_dir.path().join("api.json").exists(), "the API endpoint file is removed");
    let no_node = consumer.cue(&["providers"]);
    assert!(stderr(&no_node).contains("no node is running"), "{}", stderr(&no_node));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_entries_travel_by_gossip_and_a_late_joiner_catches_up() {
    let (mint_dir, authority) = keyed_dir();
    let (payee_dir, payee) = keyed_dir();
    let (late_dir, late) = keyed_dir();
    let genesis = cue_host::ledger::Genesis {
        network_id: "gossip-test".into(),
        mint_authority: authority.public_key(),
        allocations: Default::default(),
    };
    let minter = TestNode::start_with_ledger(mint_dir, &[], &genesis).await;
    let boot = minter.addrs();
    let payee_node = TestNode::start_with_ledger(payee_dir, &boot, &genesis).await;
    let m = minter.handle();
    let p = payee_node.handle();
    eventually("the nodes to connect", Duration::from_secs(20), || {
        let m = m.clone();
        async move { (!m.connected_peers().await.ok()?.is_empty()).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the gossip mesh forms on heartbeats
    m.mint(authority, 1_000).await.unwrap();
    for _ in 0..3 {
        m.transfer(payee, 100, None).await.unwrap();
    }
    let balance =
        |h: cue_host::node::NodeHandle, who| async move { h.balance(who).await.ok().map(|(b, _)| b) };
    eventually("the payee's node to apply every entry", Duration::from_secs(30), || {
        let p = p.clone();
        async move { (balance(p, payee).await? == 300).then_some(()) }
    })
    .await;
    assert_eq!(balance(p.clone(), authority).await, Some(700));
    let refused = p.transfer(authority, 1_000, None).await.unwrap_err();
    assert!(refused.to_string().contains("insufficient balance"), "{refused}");

    // A node that joins now missed the mint and the first transfers: the next entry it hears
    // arrives out of order, and it catches up on the payer's chain from the peer that sent it.
    let late_node = TestNode::start_with_ledger(late_dir, &boot, &genesis).await;
    let l = late_node.handle();
    tokio::time::sleep(Duration::from_secs(2)).await;
    m.transfer(late, 50, None).await.unwrap();
    eventually("the late joiner to catch up", Duration::from_secs(30), || {
        let l = l.clone();
        async move { (balance(l, late).await? == 50).then_some(()) }
    })
    .await;
    assert_eq!(balance(l.clone(), authority).await, Some(650), "the whole chain was replayed");
    assert_eq!(balance(l.clone(), payee).await, Some(300));
    let history = l.history(authority, 10).await.unwrap();
    assert_eq!(history.len(), 5, "mint and four transfers: {history:?}");
    for node in [late_node, payee_node, minter] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_talk_over_quic_and_manifests_are_dht_records() {
    let data_dir =
        |dir: &tempfile::TempDir| cue_host::datadir::DataDir::resolve(Some(dir.path().to_path_buf()));
    let (provider_dir, consumer_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut config = cue_host::node::NodeConfig::loopback(data_dir(&provider_dir), vec![]);
    config.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()];
    config.sandbox = crate::support::small_sandbox_config();
    config.provide = Some(crate::support::quick_provider());
    let provider = cue_host::node::Node::start(config).await.unwrap();
    let quic = provider.listen_addrs();
    assert!(quic[0].to_string().contains("/quic-v1/"), "{quic:?}");
    let mut config = cue_host::node::NodeConfig::loopback(data_dir(&consumer_dir), quic);
    config.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()];
    config.sandbox = crate::support::small_sandbox_config();
    let consumer = cue_host::node::Node::start(config).await.unwrap();
    let handle = consumer.handle();
    let views = eventually("the provider over QUIC", Duration::from_secs(30), || {
        let handle = handle.clone();
        async move { handle.providers().await.ok().filter(|v| v.len() == 1) }
    })
    .await;
    assert_eq!(views[0].peer_id, provider.peer_id().to_string());

    // The manifest is also a DHT record under /cue/manifest/<peer id>, checkable by anyone.
    let key = cue_host::crypto::Keypair::generate().unwrap();
    let listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()];
    let config =
        cue_host::net::NetConfig::new(listen, provider.listen_addrs(), std::sync::Arc::new(NoRecords));
    let (client, _events, event_loop) = cue_host::net::new(&key, config).unwrap();
    tokio::spawn(event_loop.run(std::future::pending()));
    let record_key = cue_host::net::DhtKey::Manifest(provider.peer_id());
    let values = eventually("the manifest record", Duration::from_secs(30), || {
        let (client, record_key) = (client.clone(), record_key.clone());
        async move { client.get_records(record_key).await.ok().filter(|v| !v.is_empty()) }
    })
    .await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let opened = cue_host::market::open_manifest(&values[0], now).unwrap();
    assert_eq!(opened.body().peer_id(), provider.peer_id());
    consumer.shutdown().await;
    provider.shutdown().await;
}

struct NoRecords;

impl cue_host::net::RecordValidator for NoRecords {
    fn accept_record(
        &self,
        _: &cue_host::net::DhtKey,
        _: &[u8],
        _: Option<&cue_host::crypto::PeerId>,
    ) -> bool {
        false
    }
}

/// An entry waits ~50 ms in its node's outbox to be gossiped with others: a node stopped in
/// that time publishes it before its network goes down, so the payee's node learns it without
/// waiting for the payer's next entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_right_after_a_transfer_still_gossips_it() {
    let (mint_dir, authority) = keyed_dir();
    let (payee_dir, payee) = keyed_dir();
    let genesis = cue_host::ledger::Genesis {
        network_id: "flush-test".into(),
        mint_authority: authority.public_key(),
        allocations: [(authority.public_key(), 1_000)].into_iter().collect(),
    };
    let minter = TestNode::start_with_ledger(mint_dir, &[], &genesis).await;
    let payee_node = TestNode::start_with_ledger(payee_dir, &minter.addrs(), &genesis).await;
    let (m, p) = (minter.handle(), payee_node.handle());
    eventually("the nodes to connect", Duration::from_secs(20), || {
        let m = m.clone();
        async move { (!m.connected_peers().await.ok()?.is_empty()).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the gossip mesh forms on heartbeats
    m.transfer(payee, 100, None).await.unwrap();
    minter.stop().await;
    eventually("the payee's node to apply the transfer", Duration::from_secs(10), || {
        let p = p.clone();
        async move { (p.balance(payee).await.ok()?.0 == 100).then_some(()) }
    })
    .await;
    payee_node.stop().await;
}

/// `method path` to a node process's API with `headers`, as a browser or a script would send
/// it: the status and the error's kind, if any.
fn api_request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("http://{addr}{path}");
    let response = match method {
        "GET" => headers.iter().fold(agent.get(&url), |r, (n, v)| r.header(*n, *v)).call(),
        _ => headers
            .iter()
            .fold(agent.post(&url), |r, (n, v)| r.header(*n, *v))
            .send_json(serde_json::json!({})),
    };
    let mut response = response.expect("an answer");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.body_mut().read_json().unwrap_or_default();
    (status, body["error"]["kind"].as_str().unwrap_or("").to_owned())
}

#[test]
fn a_node_process_replaces_a_weak_api_token_and_answers_only_to_its_own_names() {
    let cue = crate::support::Cue::new();
    let token_path = cue.data_dir.path().join("api.token");
    std::fs::write(&token_path, "abc\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // Private, as a token file should be: only its contents are wrong.
        std::fs::set_permissions(&token_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let node = NodeProcess::start_with(cue, &["--api-host", "cue.test"]);
    let token = std::fs::read_to_string(&token_path).unwrap();
    assert_eq!(token.len(), 64, "a fresh 256-bit token replaced the 3-digit one: {token:?}");
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&token_path).unwrap().permissions())
            & 0o777,
        0o600
    );
    // The warning goes to stderr, read by a thread of its own: give it a moment to arrive.
    let started = std::time::Instant::now();
    while !node.logs().contains("held no usable token (it holds 3 hex digits") {
        assert!(started.elapsed() < Duration::from_secs(10), "the replacement is logged:\n{}", node.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = node.cue(&["status", "--json"]);
    assert!(status.status.success(), "the commands use the new token: {}", stderr(&status));

    let endpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.cue.data_dir.path().join("api.json")).unwrap()).unwrap();
    let addr = endpoint["addr"].as_str().unwrap().to_owned();
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let configured = format!("cue.test:{port}");
    let own_origin = format!("http://cue.test:{port}");
    let auth = ("Authorization", bearer.as_str());
    assert_eq!(api_request(&addr, "GET", "/v1/status", &[auth, ("Host", &configured)]).0, 200);
    assert_eq!(
        api_request(&addr, "GET", "/v1/status", &[auth, ("Host", "evil.example")]),
        (421, "misdirected".into())
    );
    assert_eq!(
        api_request(&addr, "GET", "/v1/status", &[("Authorization", "Bearer abc")]),
        (401, "unauthorized".into())
    );
    let cross_site = [auth, ("Origin", "https://evil.example")];
    assert_eq!(api_request(&addr, "POST", "/v1/wallet/mint", &cross_site), (403, "cross-origin".into()));
    let own = [auth, ("Host", configured.as_str()), ("Origin", own_origin.as_str())];
    assert_eq!(
        api_request(&addr, "POST", "/v1/wallet/mint", &own).0,
        422,
        "past the guard, the body is checked"
    );
}

#[test]
fn cue_node_refuses_an_api_host_with_a_port() {
    let output = crate::support::Cue::new().run(&["node", "--api-host", "cue.test:8080"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("without a port"), "{}", stderr(&output));
}

/// A transfer made while its node had no peer never left it; when the node restarts into the
/// network, it gossips its recent entries again and the others learn it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_made_alone_reaches_the_network_when_its_node_restarts_into_it() {
    let (mint_dir, authority) = keyed_dir();
    let (payee_dir, payee) = keyed_dir();
    let genesis = cue_host::ledger::Genesis {
        network_id: "regossip-test".into(),
        mint_authority: authority.public_key(),
        allocations: [(authority.public_key(), 1_000)].into_iter().collect(),
    };
    let alone = TestNode::start_with_ledger(mint_dir, &[], &genesis).await;
    alone.handle().transfer(payee, 100, None).await.unwrap();
    let mint_dir = alone.stop().await;
    let payee_node = TestNode::start_with_ledger(payee_dir, &[], &genesis).await;
    let minter = TestNode::start_with_ledger(mint_dir, &payee_node.addrs(), &genesis).await;
    let p = payee_node.handle();
    eventually("the payee's node to learn the transfer", Duration::from_secs(30), || {
        let p = p.clone();
        async move { (p.balance(payee).await.ok()?.0 == 100).then_some(()) }
    })
    .await;
    minter.stop().await;
    payee_node.stop().await;
}
