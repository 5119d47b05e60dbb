//! Reputation from evidence only, on real nodes on 127.0.0.1: verdicts signed by a peer this
//! node trusts still weigh nothing when they name no contract both parties signed; and an
//! equivocation proof travels by gossip, so a node that never saw the fork flags the account.

use std::time::Duration;

use cue_host::crypto::{Digest, Keypair};
use cue_host::protocol::{
    ChainLink, OutcomeAttestation, OutcomeAttestations, Signed, Transfer, Validity, Verdict,
};

use crate::contracts_in_process::{bare_consumer, consumer_with_genesis};
use crate::support::{eventually, guest_bytes, keyed_dir};

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A node of `genesis` in `dir`, booting from `boot`, providing when `provide`.
async fn node(
    dir: &tempfile::TempDir,
    genesis: &cue_host::ledger::Genesis,
    boot: Vec<cue_host::net::Multiaddr>,
    provide: bool,
) -> cue_host::node::Node {
    let data_dir = cue_host::datadir::DataDir::resolve(Some(dir.path().to_path_buf()));
    let mut config = cue_host::node::NodeConfig::loopback(data_dir, boot);
    config.sandbox = crate::support::small_sandbox_config();
    config.genesis = Some(genesis.clone());
    config.provide = provide.then(crate::support::quick_provider);
    cue_host::node::Node::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_about_strangers_weigh_nothing_even_from_a_trusted_peer() {
    let (consumer_dir, consumer_id) = keyed_dir();
    let genesis = cue_host::ledger::Genesis {
        network_id: "evidence-test".into(),
        mint_authority: consumer_id.public_key(),
        allocations: [(consumer_id.public_key(), 1_000_000_000)].into_iter().collect(),
    };
    let provider_dir = tempfile::tempdir().unwrap();
    let provider = node(&provider_dir, &genesis, vec![], true).await;
    let consumer = node(&consumer_dir, &genesis, provider.listen_addrs(), false).await;
    let handle = consumer.handle();
    let fib = guest_bytes("fib");
    eventually("the provider", Duration::from_secs(30), || {
        let handle = handle.clone();
        async move { handle.providers().await.ok().filter(|p| !p.is_empty()) }
    })
    .await;
    // A completed job: the consumer now trusts the provider.
    let options = cue_host::node::SubmitOptions {
        reference: format!("sha256:{}", Digest::of(&fib)),
        call: "fib(20)".into(),
        offer: None,
        max_fuel: Some(1_000_000),
        max_memory_bytes: 16 << 20,
        timeout: Duration::from_secs(10),
        replicas: 1,
        provider: None,
        max_attempts: 1,
        audit_fuel: 0,
    };
    handle.publish(fib.clone(), "fib", "1.0.0").await.unwrap();
    handle.submit(options, |_, _| {}).await.unwrap();
    eventually("the provider trusted", Duration::from_secs(5), || {
        let (handle, provider) = (handle.clone(), provider.peer_id());
        async move { (handle.reputation(provider) > 0.5).then_some(()) }
    })
    .await;

    // The provider's key signs `default` verdicts about a stranger it never dealt with (sent by
    // a bare peer: the set's signer is the attester, whoever forwards it).
    let provider_key = {
        let file = std::fs::read(provider_dir.path().join("identity.key")).unwrap();
        Keypair::from_seed(file[4..36].try_into().unwrap())
    };
    assert_eq!(provider_key.peer_id(), provider.peer_id());
    let stranger = Keypair::generate().unwrap();
    let made_up = (0..5u8)
        .map(|i| OutcomeAttestation {
            contract: Digest([i; 32]),
            subject: stranger.public(),
            verdict: Verdict::Default,
            evidence: Vec::new(),
        })
        .collect();
    let set = Signed::sign(
        &provider_key,
        OutcomeAttestations { attestations: made_up },
        Validity::starting(now_ms(), 60_000),
    )
    .unwrap();
    let forwarder = Keypair::generate().unwrap();
    let client = bare_consumer(&forwarder, &consumer).await;
    client.subscribe(cue_host::node::REPUTATION_TOPIC).await.unwrap();
    let refused_before = handle.refusals().get("attestations").copied().unwrap_or(0);
    let refused = eventually("the verdicts heard and weighed", Duration::from_secs(30), || {
        let (client, handle, bytes) = (client.clone(), handle.clone(), set.bytes().to_vec());
        async move {
            let _ = client.publish(cue_host::node::REPUTATION_TOPIC, bytes).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let refused = handle.refusals().get("attestations").copied().unwrap_or(0);
            (refused >= refused_before + 5).then_some(refused)
        }
    })
    .await;
    assert!(refused >= refused_before + 5);
    assert_eq!(handle.reputation(stranger.peer_id()), 0.5, "made-up verdicts move nothing");
    consumer.shutdown().await;
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocation_proof_travels_by_gossip_and_flags_the_account_everywhere() {
    let (forker, genesis) = consumer_with_genesis("equivocation-test");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(&a_dir, &genesis, vec![], false).await;
    let b = node(&b_dir, &genesis, a.listen_addrs(), false).await;
    eventually("the two nodes connected", Duration::from_secs(30), || {
        let handle = b.handle();
        async move { handle.connected_peers().await.ok().filter(|p| !p.is_empty()) }
    })
    .await;
    // Two different entries at the forker's first position: only node A sees both.
    let pay = |to: &Keypair| {
        let body = Transfer {
            genesis: genesis.id(),
            link: ChainLink::FIRST,
            to: to.public(),
            amount: 10,
            reference: None,
        };
        Signed::sign(&forker, body, Validity::starting(now_ms(), 600_000)).unwrap()
    };
    let (first, second) = (pay(&Keypair::generate().unwrap()), pay(&Keypair::generate().unwrap()));
    a.handle().import(first.bytes().to_vec(), false).await.unwrap();
    assert!(a.handle().import(second.bytes().to_vec(), false).await.is_err(), "the fork is refused");
    assert!(a.handle().balance(forker.peer_id()).await.unwrap().1, "A flags the forker");

    let b_handle = b.handle();
    eventually("B to flag the forker", Duration::from_secs(30), || {
        let handle = b_handle.clone();
        let forker = forker.peer_id();
        async move { handle.balance(forker).await.ok().filter(|(_, flagged)| *flagged) }
    })
    .await;
    assert_eq!(b_handle.reputation(forker.peer_id()), 0.0);
    b.shutdown().await;
    a.shutdown().await;
}
