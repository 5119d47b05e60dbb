//! Crashes around money, between `cue node` processes on 127.0.0.1: a consumer stopped dead
//! right after the commit of its payment, and a provider stopped dead after storing and sending
//! a delivered result (as the payment arrives). Each is restarted on its data dir; the contract
//! must end paid on both nodes, paid once, run once, and every node's balances must equal a
//! replay of its log (`cue wallet verify`). The crash points are `cue node --crash-at`
//! (`node::CrashPoint`): `std::process::abort()` at the named place, no destructor, no flush.

use std::time::Duration;

use crate::contracts::{SUPPLY, balance, genesis_for, provider, publish, submit, wait_for_providers};
use crate::support::{Cue, NodeProcess, stderr};

/// The exit status of a process stopped by `abort()` (SIGABRT).
#[cfg(unix)]
fn aborted(status: std::process::ExitStatus) -> bool {
    std::os::unix::process::ExitStatusExt::signal(&status) == Some(6)
}

/// This node's contracts (`cue jobs --json`).
fn contracts(node: &NodeProcess) -> Vec<serde_json::Value> {
    node.cue.json(&["jobs", "--json"]).as_array().cloned().unwrap_or_default()
}

/// Polls `node`'s contracts until `check` answers `Some` (at most 60 s).
fn wait_for_contracts<T>(
    node: &NodeProcess,
    what: &str,
    check: impl Fn(&[serde_json::Value]) -> Option<T>,
) -> T {
    let started = std::time::Instant::now();
    loop {
        let list = contracts(node);
        if let Some(found) = check(&list) {
            return found;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: {list:?}\nlogs:\n{}", node.logs());
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The one contract, once it is paid.
fn paid(list: &[serde_json::Value]) -> Option<serde_json::Value> {
    match list {
        [one] if one["state"] == "paid" => Some(one.clone()),
        _ => None,
    }
}

/// `cue wallet verify --json` on `node`'s data dir: the replay's report, which must be sound.
fn verified(node: &NodeProcess) -> serde_json::Value {
    let report = node.cue.json(&["wallet", "verify", "--json"]);
    assert_eq!(report["sound"], true, "balances equal a replay of the log: {report}");
    assert_eq!(report["supply"].as_u64(), Some(SUPPLY), "{report}");
    report
}

/// What both nodes must show once they settled after the crash: one contract, paid by the
/// same transfer on both sides, one receipt in the provider's log, the consumer's one payment
/// in both ledgers, and balances equal to a replay of each log.
fn assert_paid_once(consumer: &NodeProcess, provider: &NodeProcess) {
    let theirs = wait_for_contracts(provider, "the provider's contract paid", paid);
    let ours = wait_for_contracts(consumer, "the consumer's contract paid", paid);
    assert_eq!(theirs["contract"], ours["contract"]);
    assert_eq!(theirs["payment"], ours["payment"], "the same payment on both nodes");
    let price = ours["price"].as_u64().expect("a price");
    assert!(price > 0);
    let job = provider.cue.json(&["job", ours["job"].as_str().unwrap(), "--json"]);
    let receipts = job["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "cue/receipt").count();
    assert_eq!(receipts, 1, "the job ran once: {job}");
    let history = consumer.cue.json(&["wallet", "history", "--json"]);
    // Its payments: the release of the contract's lock (its lock is no payment).
    let payments: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == consumer.peer_id.as_str() && e["kind"] != "cue/token-lock")
        .collect();
    assert_eq!(payments.len(), 1, "paid once: {history}");
    for node in [consumer, provider] {
        assert_eq!(balance(node, &provider.peer_id), price, "the provider holds the price, once");
        assert_eq!(balance(node, &consumer.peer_id), SUPPLY - price);
        verified(node);
    }
}

#[cfg(unix)]
#[test]
fn a_consumer_killed_right_after_its_payment_commit_pays_once_after_a_restart() {
    let consumer_cue = Cue::new();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let provider = provider(&genesis, None, &["--pay-grace", "10m"]);
    let boot = provider.listen[0].clone();
    let consumer_args = ["--genesis", genesis.as_str(), "--bootstrap", boot.as_str()];
    let consumer = NodeProcess::start_with(
        consumer_cue,
        &[&consumer_args[..], &["--crash-at", "consumer-paid"]].concat(),
    );
    wait_for_providers(&consumer, 1);
    publish(&provider, "fib", "fib");

    let output = consumer.cue(&["submit", "fib@^1", "fib(25)", "--json"]);
    assert!(!output.status.success(), "the consumer's node died under the submit: {}", stderr(&output));
    assert!(stderr(&output).contains("does not answer"), "the submit says why: {}", stderr(&output));
    let (status, consumer_cue) = consumer.crashed(Duration::from_secs(20));
    assert!(aborted(status), "stopped dead at the crash point: {status:?}");

    let consumer = NodeProcess::start_with(consumer_cue, &consumer_args);
    assert_paid_once(&consumer, &provider);
}

#[cfg(unix)]
#[test]
fn a_provider_killed_after_delivering_is_paid_once_after_a_restart() {
    let consumer_cue = Cue::new();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let crashing = provider(&genesis, None, &["--pay-grace", "10m", "--crash-at", "provider-delivered"]);
    let boot = crashing.listen[0].clone();
    let consumer = NodeProcess::start_with(consumer_cue, &["--genesis", &genesis, "--bootstrap", &boot]);
    wait_for_providers(&consumer, 1);
    publish(&crashing, "fib", "fib");

    let (code, report) = submit(&consumer, &["fib@^1", "fib(25)"]);
    assert_eq!(code, 0, "the consumer got its result and paid: {report}");
    assert_eq!(report["result"].as_u64(), Some(75025), "{report}");
    let (status, provider_cue) = crashing.crashed(Duration::from_secs(20));
    assert!(aborted(status), "stopped dead at the crash point: {status:?}");
    // Down longer than gossipsub remembers a message to offer a newcomer (5 heartbeats of
    // 500 ms): the payment must reach the restarted provider some other way.
    std::thread::sleep(Duration::from_secs(4));

    let rejoin = consumer.listen[0].clone();
    let restarted = NodeProcess::start_with(
        provider_cue,
        &[
            "--provide",
            "--genesis",
            &genesis,
            "--price-per-mfuel",
            "1000",
            "--base-fee",
            "5",
            "--bootstrap",
            &rejoin,
        ],
    );
    assert_paid_once(&consumer, &restarted);
}

/// A provider stopped dead between the commit of a delivered result and telling it: its
/// consumer never saw the contract (a quick job is told with its outcome), fails over, and owes
/// nothing (it gives its lock back). After its restart the provider records no default against
/// that consumer and claims nothing: the contract ends failed.
#[cfg(unix)]
#[test]
fn a_provider_killed_before_telling_its_result_records_no_default() {
    let consumer_cue = Cue::new();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let crashing = provider(&genesis, None, &["--pay-grace", "1s", "--crash-at", "provider-stored"]);
    let boot = crashing.listen[0].clone();
    let consumer = NodeProcess::start_with(consumer_cue, &["--genesis", &genesis, "--bootstrap", &boot]);
    wait_for_providers(&consumer, 1);
    publish(&crashing, "fib", "fib");

    let output = consumer.cue(&["submit", "fib@^1", "fib(25)", "--timeout", "1s", "--attempts", "1"]);
    assert!(!output.status.success(), "nothing was delivered: {}", stderr(&output));
    let (status, provider_cue) = crashing.crashed(Duration::from_secs(20));
    assert!(aborted(status), "stopped dead at the crash point: {status:?}");
    assert!(contracts(&consumer).iter().all(|c| c["state"] != "paid"), "the consumer paid nothing");

    let rejoin = consumer.listen[0].clone();
    let restarted = NodeProcess::start_with(
        provider_cue,
        &[
            "--provide",
            "--genesis",
            &genesis,
            "--price-per-mfuel",
            "1000",
            "--base-fee",
            "5",
            "--bootstrap",
            &rejoin,
        ],
    );
    // Past the contract's deadline and the provider's wait after its start (10 s), the contract
    // ends failed: the consumer gave its lock back without the result, nobody owes anything.
    let started = std::time::Instant::now();
    let states = loop {
        let states: Vec<_> = contracts(&restarted).iter().map(|c| c["state"].to_string()).collect();
        if states.iter().any(|s| s.contains("failed") || s.contains("defaulted") || s.contains("paid")) {
            break states;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the contract never ended: {states:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        states.iter().all(|s| s.contains("failed")),
        "no default, no claim for a result never told: {states:?}"
    );
}
