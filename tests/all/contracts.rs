//! Compute contracts end to end between `cue node` processes on 127.0.0.1: jobs paid exactly
//! what their receipts make due, supply conserved, an over-budget job paid for the fuel it
//! used, a provider killed mid-job replaced without paying twice, a lying provider caught by
//! replication, jobs that wait ended at once by a provider that then serves the next. In
//! process, against the protocol itself: [`super::contracts_in_process`]; providers that lie
//! about their speed or make up failures: [`super::dishonest`].

use std::collections::HashSet;
use std::time::Duration;

use crate::support::{Cue, NodeProcess, guest, stderr, stdout};

pub(crate) const SUPPLY: u64 = 1_000_000_000;
const PRICE: u64 = 1_000;
const BASE_FEE: u64 = 5;

/// A genesis giving the whole supply to `consumer`, written into a temp file.
pub(crate) fn genesis_for(consumer: &Cue) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.toml");
    let alloc = format!("{}={SUPPLY}", consumer.peer_id());
    let output = consumer.run(&["network", "init", "--out", path.to_str().unwrap(), "--alloc", &alloc]);
    assert!(output.status.success(), "{}", stderr(&output));
    (dir, path.to_str().unwrap().to_owned())
}

pub(crate) fn provider(genesis: &str, boot: Option<&str>, extra: &[&str]) -> NodeProcess {
    let mut args = vec!["--provide", "--genesis", genesis, "--price-per-mfuel", "1000", "--base-fee", "5"];
    if let Some(boot) = boot {
        args.extend(["--bootstrap", boot]);
    }
    args.extend_from_slice(extra);
    NodeProcess::start(&args)
}

pub(crate) fn wait_for_providers(consumer: &NodeProcess, count: usize) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let list = consumer.cue.json(&["providers", "--json"]);
        if list.as_array().map_or(0, Vec::len) == count {
            return list;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "providers: {list}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub(crate) fn submit(consumer: &NodeProcess, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["submit"];
    all.extend_from_slice(args);
    all.push("--json");
    let output = consumer.cue(&all);
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("submit {args:?}: not JSON ({e}): {}\n{}", stdout(&output), stderr(&output))
    });
    (output.status.code().unwrap_or(-1), json)
}

fn price(fuel: u64) -> u64 {
    BASE_FEE + (fuel * PRICE).div_ceil(1_000_000)
}

pub(crate) fn balance(node: &NodeProcess, peer: &str) -> u64 {
    node.cue.json(&["wallet", "balance", peer, "--json"])["balance"].as_u64().unwrap()
}

pub(crate) fn publish(node: &NodeProcess, name: &str, file: &str) {
    let path = guest(file);
    let output = node.cue(&["publish", path.to_str().unwrap(), "--name", name, "--version", "1.0.0"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn jobs_are_paid_what_their_receipts_say_and_a_killed_provider_is_replaced() {
    let consumer_cue = Cue::new();
    let consumer_id = consumer_cue.peer_id();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let first = provider(&genesis, None, &[]);
    let boot = first.listen[0].clone();
    let mut providers = [first, provider(&genesis, Some(&boot), &[]), provider(&genesis, Some(&boot), &[])];
    let consumer = NodeProcess::start_with(consumer_cue, &["--genesis", &genesis, "--bootstrap", &boot]);
    wait_for_providers(&consumer, 3);
    publish(&providers[0], "fib", "fib");
    publish(&providers[0], "spin", "hostile-infinite-loop");
    publish(&providers[0], "nbody", "nbody");
    publish(&providers[0], "wordcount", "wordcount");
    let mut paid = 0;

    // A job: the typed result, a receipt, and a payment of exactly the receipt's price.
    let (code, fib) = submit(&consumer, &["fib@^1", "fib(30)"]);
    assert_eq!(code, 0, "{fib}");
    assert_eq!((fib["result"].as_u64(), fib["error"].is_null()), (Some(832040), true), "{fib}");
    assert_eq!(fib["cost"].as_u64().unwrap(), price(fib["fuel"].as_u64().unwrap()), "{fib}");
    assert!(fib["receipt"].as_str().unwrap().len() == 64);
    paid += fib["cost"].as_u64().unwrap();

    // A call too long for a request (48 KB) travels on the job stream, read from a file: the
    // same result as running it here.
    let call = format!("count-words(\"{}\")", ["the cat sat"; 4_000].join(" "));
    let call_dir = tempfile::tempdir().unwrap();
    let call_file = call_dir.path().join("call.wave");
    std::fs::write(&call_file, &call).unwrap();
    let (code, words) = submit(&consumer, &["wordcount@1", "--call-file", call_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{words}");
    let (_, local) = consumer.cue.run_json("wordcount", &call, &[]);
    assert_eq!(words["result"], local["result"], "{words}");
    assert_eq!(words["fuel"], local["fuel"], "the same fuel as a local run");
    assert_eq!(words["cost"].as_u64().unwrap(), price(words["fuel"].as_u64().unwrap()), "{words}");
    paid += words["cost"].as_u64().unwrap();

    // Over budget: stopped at its fuel, and the fuel used is paid for (the work was done).
    let (code, spin) = submit(&consumer, &["spin@1", "run()", "--max-fuel", "2000000"]);
    assert_eq!(code, 1, "{spin}");
    assert_eq!(spin["error"]["kind"], "out-of-fuel", "{spin}");
    let fuel = spin["fuel"].as_u64().unwrap();
    assert!(fuel > 1_000_000 && fuel <= 2_000_000, "{spin}");
    assert_eq!(spin["cost"].as_u64().unwrap(), price(fuel));
    paid += price(fuel);

    // The provider running a long job dies: the job completes on another, paid once.
    let best = consumer.cue.json(&["providers", "--json"])[0]["peer_id"].as_str().unwrap().to_owned();
    let victim = providers.iter().position(|p| p.peer_id == best).unwrap();
    let victim_before = balance(&consumer, &best);
    let killer = std::thread::spawn({
        let pid = providers[victim].child.id();
        move || {
            // Early enough that the job (seconds of n-body) is still running on a fast, quiet
            // machine; killed before its request arrives, the attempt fails the same way.
            std::thread::sleep(Duration::from_millis(700));
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    });
    let (code, nbody) = submit(
        &consumer,
        &["nbody@1", "energy-after(8000000)", "--timeout", "30s", "--max-fuel", "20000000000"],
    );
    killer.join().unwrap();
    providers[victim].kill();
    assert_eq!(code, 0, "{nbody}");
    let attempts = nbody["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["provider"], best.as_str(), "{nbody}");
    assert_eq!(attempts[0]["outcome"], "failed", "{nbody}");
    assert_eq!(attempts.iter().filter(|a| a["paid"].as_u64() > Some(0)).count(), 1, "paid once: {nbody}");
    assert_ne!(nbody["provider"], best.as_str());
    paid += nbody["cost"].as_u64().unwrap();

    // Supply is conserved: what left the consumer is what the living providers hold.
    assert_eq!(balance(&consumer, &consumer_id), SUPPLY - paid);
    assert_eq!(
        balance(&consumer, &best),
        victim_before,
        "the dead provider was not paid for the job it dropped"
    );
    let earned: u64 = providers.iter().map(|p| balance(&consumer, &p.peer_id)).sum();
    assert_eq!(earned, paid);
    for (i, provider) in providers.iter().enumerate().filter(|(i, _)| *i != victim) {
        let own = eventually_blocking(|| {
            let own = balance(provider, &provider.peer_id);
            (own == balance(&consumer, &provider.peer_id)).then_some(own)
        });
        assert_eq!(own, balance(&consumer, &provider.peer_id), "provider {i} sees its own payments");
    }
    let jobs = consumer.cue.json(&["jobs", "--json"]);
    let states: HashSet<&str> =
        jobs.as_array().unwrap().iter().map(|c| c["state"].as_str().unwrap()).collect();
    assert!(states.contains("paid") && states.contains("failed"), "{jobs}");
}

/// Jobs that wait — a 30 s sleep, a wait on `u64::MAX`, a poll of a list, a busy loop on
/// `ready()` — submitted with `--timeout 500ms` to a `cue node --provide` that runs one job
/// at a time, each get their typed `timeout` in seconds (the provider's sandbox ends them at
/// once, in virtual time) with the same fuel every time, and the provider then serves the
/// next job: its thread, pool instance and job slot are free again.
#[test]
fn waiting_jobs_time_out_at_once_on_a_provider_that_then_serves_the_next() {
    let consumer_cue = Cue::new();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let provider = provider(&genesis, None, &["--max-jobs", "1"]);
    let boot = provider.listen[0].clone();
    let consumer = NodeProcess::start_with(consumer_cue, &["--genesis", &genesis, "--bootstrap", &boot]);
    wait_for_providers(&consumer, 1);
    let waiters = ["hostile-sleep", "hostile-subscribe-forever", "hostile-poll-list", "hostile-busy-ready"];
    for guest in waiters {
        publish(&provider, guest, guest);
    }
    publish(&provider, "fib", "fib");
    for guest in waiters {
        let mut fuel = Vec::new();
        for _ in 0..2 {
            let started = std::time::Instant::now();
            let (code, job) = submit(&consumer, &[&format!("{guest}@1"), "run()", "--timeout", "500ms"]);
            let elapsed = started.elapsed();
            assert_eq!((code, job["error"]["kind"].as_str()), (1, Some("timeout")), "{guest}: {job}");
            assert!(elapsed < Duration::from_secs(10), "{guest} took {elapsed:?} to end");
            assert_eq!(job["provider"], provider.peer_id.as_str(), "{guest}: {job}");
            fuel.push(job["fuel"].as_u64().unwrap());
        }
        assert_eq!(fuel[0], fuel[1], "{guest}: the same job, the same fuel on the provider");
    }
    let started = std::time::Instant::now();
    let (code, fib) = submit(&consumer, &["fib@1", "fib(30)"]);
    assert_eq!((code, fib["result"].as_u64()), (0, Some(832040)), "{fib}");
    assert!(started.elapsed() < Duration::from_secs(10), "the next job waited {:?}", started.elapsed());
}

fn eventually_blocking<T>(mut check: impl FnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "timed out");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_lying_provider_is_caught_by_replication_and_not_paid() {
    let consumer_cue = Cue::new();
    let (_genesis_dir, genesis) = genesis_for(&consumer_cue);
    let first = provider(&genesis, None, &[]);
    let boot = first.listen[0].clone();
    let liar = provider(&genesis, Some(&boot), &["--fault-injection", "overstate-fuel"]);
    let providers = [first, provider(&genesis, Some(&boot), &[]), liar];
    let consumer = NodeProcess::start_with(consumer_cue, &["--genesis", &genesis, "--bootstrap", &boot]);
    wait_for_providers(&consumer, 3);
    publish(&providers[0], "fib", "fib");
    let (code, report) = submit(&consumer, &["fib@1", "fib(40)", "--replicas", "3"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["result"].as_u64(), Some(102334155));
    let liar_id = providers[2].peer_id.as_str();
    let attempts = report["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{report}");
    let lie = attempts.iter().find(|a| a["provider"] == liar_id).unwrap();
    assert_eq!(
        (lie["outcome"].as_str(), lie["paid"].as_u64()),
        (Some("invalid-result"), Some(0)),
        "{report}"
    );
    assert_ne!(report["provider"], liar_id, "the majority's receipt is reported");
    assert_eq!(balance(&consumer, liar_id), 0);
    let honest: u64 = providers[..2].iter().map(|p| balance(&consumer, &p.peer_id)).sum();
    assert_eq!(honest, report["cost"].as_u64().unwrap());
    let views = consumer.cue.json(&["providers", "--json"]);
    let reputation = |id: &str| {
        views.as_array().unwrap().iter().find(|v| v["peer_id"] == id).unwrap()["reputation"].as_f64().unwrap()
    };
    assert!(reputation(liar_id) < 0.5, "the liar's reputation fell: {views}");
    assert!(reputation(&providers[0].peer_id) > 0.5, "an honest provider's rose: {views}");
    // The consumer's verdicts are signed in a set within ~50 ms of the job; the job's view
    // shows the set with the job's own events.
    let job_id = report["job"].as_str().unwrap();
    eventually_blocking(|| {
        let job = consumer.cue.json(&["job", job_id, "--json"]);
        let kinds: Vec<String> = job["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();
        assert!(kinds.iter().any(|k| k == "cue/receipt"), "{job}");
        kinds.iter().any(|k| k == "cue/outcome-attestations").then_some(())
    });
}
