//! The checks at the end of a chaos run, in terms of what the CLI reports (so they hold
//! whatever the payment protocol does inside):
//! - **payments lost** — a payment (a transfer, or a release of a lock paying its provider) a
//!   consumer committed (in its own `cue wallet history`) that
//!   its payee provider does not store (not in that provider's history of the consumer's
//!   account), and whose contract its provider did not claim from the lock instead (a payment
//!   that came after the deadline), once every node is up and [`SETTLE_WITHIN`] has given them
//!   time to settle: must be 0;
//! - **jobs paid twice** — a job with more than one paid contract on its consumer
//!   (`cue jobs`), or more transfers from a consumer than paid contracts: must be 0;
//! - **supply conserved** and **balances = replay** — `cue wallet verify` on every node: the
//!   stored balances equal a replay of its log and add up to the genesis supply;
//! - and no wrong result, some jobs completed, the hostile peer's report read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Kills;
use super::cluster::{Cluster, Role};
use super::jobs::JobFigures;

/// How long the nodes get, once all are up, for every committed payment to reach its payee.
pub const SETTLE_WITHIN: Duration = Duration::from_secs(180);
/// Entries or contracts read per request (the API's own cap); more are read page by page.
const PAGE: usize = 10_000;

/// What the checks found.
pub struct Figures {
    /// Transfers the consumers committed.
    pub committed: u64,
    /// Of those, stored by their payee.
    pub acknowledged: u64,
    /// Of those, not stored by their payee after settling.
    pub lost: Vec<String>,
    /// Of the acknowledged, those not stored by their payee whose contract the payee ended
    /// paid by its own claim from the lock (the payment came after the deadline).
    pub claimed: u64,
    /// Contracts paid on both sides by the same transfer.
    pub paid_both_sides: u64,
    /// Jobs paid more than once.
    pub paid_twice: u64,
    /// How long settling took.
    pub settled_in: Duration,
    /// Per node: (name, sound, supply, stored total, entries).
    pub verified: Vec<(String, bool, u64, u64, u64)>,
    /// The supply every node must find.
    pub expected_supply: u64,
}

/// A consumer's committed payments: (hash, payee peer id).
fn committed(cluster: &Cluster, consumer: usize) -> Result<Vec<(String, String)>> {
    let me = cluster.nodes[consumer].peer_id.clone();
    Ok(history(cluster, consumer, &me)?
        .iter()
        .filter(|e| e["from"] == me.as_str() && is_payment(e))
        .filter_map(|e| Some((e["hash"].as_str()?.to_owned(), e["to"].as_str()?.to_owned())))
        .collect())
}

/// Every entry node `i` stores of `account`'s (signed by it or crediting it), newest first,
/// read page by page.
fn history(cluster: &Cluster, i: usize, account: &str) -> Result<Vec<serde_json::Value>> {
    let mut all: Vec<serde_json::Value> = Vec::new();
    loop {
        let mut args = vec!["wallet".to_owned(), "history".into(), account.into(), "--json".into()];
        args.extend(["--limit".into(), PAGE.to_string()]);
        if let Some(last) = all.last() {
            args.extend(["--before".into(), last["log_position"].to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let page = cluster.json(i, &args)?.as_array().cloned().unwrap_or_default();
        let full = page.len() == PAGE;
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// Every contract node `i` is a party to, most recently changed first, read page by page.
fn jobs(cluster: &Cluster, i: usize) -> Result<Vec<serde_json::Value>> {
    let mut all: Vec<serde_json::Value> = Vec::new();
    loop {
        let (limit, offset) = (PAGE.to_string(), all.len().to_string());
        let args = ["jobs", "--json", "--limit", &limit, "--offset", &offset];
        let page = cluster.json(i, &args)?.as_array().cloned().unwrap_or_default();
        let full = page.len() == PAGE;
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// Whether a history entry is a payment: a transfer, or a release of a lock that pays its
/// provider something (a release paying nothing is a refund).
fn is_payment(entry: &serde_json::Value) -> bool {
    entry["kind"] == "cue/token-transfer"
        || (entry["kind"] == "cue/token-release" && entry["amount"].as_u64().is_some_and(|a| a > 0))
}

/// The hashes of the entries `provider` stores of `account`'s.
fn stored_by(cluster: &Cluster, provider: usize, account: &str) -> Result<HashSet<String>> {
    Ok(history(cluster, provider, account)?
        .iter()
        .filter_map(|e| Some(e["hash"].as_str()?.to_owned()))
        .collect())
}

/// How many payments were committed in all, those not stored by their payee, and how many
/// of the others stand for a claim their provider made from the lock instead.
fn lost_payments(cluster: &Cluster) -> Result<(u64, Vec<String>, u64)> {
    let providers: HashMap<&str, usize> = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.role == Role::Provider)
        .map(|(i, n)| (n.peer_id.as_str(), i))
        .collect();
    let (mut total, mut lost, mut claimed) = (0, Vec::new(), 0);
    for (c, consumer) in cluster.nodes.iter().enumerate().filter(|(_, n)| n.role == Role::Consumer) {
        let payments = committed(cluster, c)?;
        total += payments.len() as u64;
        let mut stored: HashMap<usize, HashSet<String>> = HashMap::new();
        for (hash, to) in payments {
            let Some(&p) = providers.get(to.as_str()) else { continue };
            let known = match stored.entry(p) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(stored_by(cluster, p, &consumer.peer_id)?)
                }
            };
            if known.contains(&hash) {
                continue;
            }
            if claimed_instead(cluster, c, p, &hash)? {
                claimed += 1;
            } else {
                lost.push(format!("{} -> {}: {hash}", consumer.name, cluster.nodes[p].name));
            }
        }
    }
    Ok((total, lost, claimed))
}

/// Whether the contract a consumer's payment `hash` paid is paid on its provider `p` by the
/// provider's own claim from the lock (the payment came after the deadline, when the lock was
/// released already): the provider got the same due, so nothing was lost.
fn claimed_instead(cluster: &Cluster, consumer: usize, p: usize, hash: &str) -> Result<bool> {
    let Some(contract) =
        jobs(cluster, consumer)?.into_iter().find(|c| c["payment"] == hash).map(|c| c["contract"].clone())
    else {
        return Ok(false);
    };
    Ok(jobs(cluster, p)?.iter().any(|c| {
        c["contract"] == contract
            && c["state"] == "paid"
            && c["detail"].as_str().is_some_and(|d| d.contains("claimed"))
    }))
}

/// Paid contracts on both sides, and jobs paid twice (by contracts, and by transfers).
fn paid_contracts(cluster: &Cluster) -> Result<(u64, u64)> {
    let mut provider_paid: HashMap<String, String> = HashMap::new();
    for (p, _) in cluster.nodes.iter().enumerate().filter(|(_, n)| n.role == Role::Provider) {
        for c in jobs(cluster, p)? {
            if c["state"] == "paid" && c["role"] == "provider" {
                provider_paid.insert(c["contract"].to_string(), c["payment"].to_string());
            }
        }
    }
    let (mut both, mut twice) = (0, 0);
    for (c, _) in cluster.nodes.iter().enumerate().filter(|(_, n)| n.role == Role::Consumer) {
        let mut per_job: BTreeMap<String, u64> = BTreeMap::new();
        let mut with_payment = 0;
        for k in jobs(cluster, c)? {
            if k["state"] != "paid" || k["role"] != "consumer" {
                continue;
            }
            *per_job.entry(k["job"].to_string()).or_default() += 1;
            if !k["payment"].is_null() {
                with_payment += 1;
            }
            if provider_paid.get(&k["contract"].to_string()) == Some(&k["payment"].to_string()) {
                both += 1;
            }
        }
        twice += per_job.values().filter(|n| **n > 1).count() as u64;
        let transfers = committed(cluster, c)?.len() as u64;
        twice += transfers.saturating_sub(with_payment);
    }
    Ok((both, twice))
}

/// Waits (at most [`SETTLE_WITHIN`]) until no committed payment is missing at its payee, then
/// checks everything (see the module docs).
pub fn settle_and_check(cluster: &Cluster, expected_supply: u64) -> Result<Figures> {
    let started = Instant::now();
    let (committed, lost, claimed) = loop {
        let (total, lost, claimed) = lost_payments(cluster)?;
        if lost.is_empty() || started.elapsed() > SETTLE_WITHIN {
            break (total, lost, claimed);
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let settled_in = started.elapsed();
    // Contracts conclude a moment after their payment is stored (the watcher's 250 ms sweep).
    std::thread::sleep(Duration::from_secs(1));
    let (paid_both_sides, paid_twice) = paid_contracts(cluster)?;
    let mut verified = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let report = cluster.json(i, &["wallet", "verify", "--json"])?;
        let figure = |name: &str| report[name].as_u64().unwrap_or(0);
        let sound = report["sound"] == true;
        verified.push((
            node.name.clone(),
            sound,
            figure("supply"),
            figure("balances_total"),
            figure("entries"),
        ));
    }
    Ok(Figures {
        committed,
        acknowledged: committed - lost.len() as u64,
        lost,
        claimed,
        paid_both_sides,
        paid_twice,
        settled_in,
        verified,
        expected_supply,
    })
}

/// Prints the figures; answers the checks that failed (none: the run passed).
pub fn print(
    run: &str,
    jobs: &JobFigures,
    kills: &Kills,
    hostile: &serde_json::Value,
    figures: &Figures,
) -> Vec<String> {
    let mut failed = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            failed.push(what.to_owned());
        }
        if ok { "ok" } else { "FAILED" }
    };
    println!("\nchaos run: {run}");
    println!(
        "  jobs completed          {:>8}   (failed on a running node {}, refused while the node was down {})",
        jobs.completed,
        jobs.failed_total(),
        jobs.node_down
    );
    for (reason, count) in &jobs.failed {
        println!("      {count:>6} × {reason}");
    }
    println!("  wrong results           {:>8}   {}", jobs.wrong, check(jobs.wrong == 0, "wrong results"));
    let some = check(jobs.completed > 0, "no job completed");
    println!("  jobs flowed             {:>8}   {some}", jobs.completed > 0);
    let count = |name: &str| hostile[name].as_u64().unwrap_or(0);
    let hostile_sent = count("requests") + count("gossip") + count("stalled_streams");
    println!(
        "  faults injected         {:>8}   (SIGKILL: {} providers, {} consumers; hostile messages: {hostile_sent} — \
         {} requests, {} answered; {} gossip; {} stalled streams; {} attacks could not be made)",
        kills.providers + kills.consumers + hostile_sent,
        kills.providers,
        kills.consumers,
        count("requests"),
        count("answered"),
        count("gossip"),
        count("stalled_streams"),
        count("failed"),
    );
    println!("  payments committed      {:>8}", figures.committed);
    println!(
        "  payments acknowledged   {:>8}   (stored by their provider, or {} of them late and claimed from the lock instead; \
         contracts paid on both sides: {}; settled in {:.1} s)",
        figures.acknowledged,
        figures.claimed,
        figures.paid_both_sides,
        figures.settled_in.as_secs_f64()
    );
    let lost = figures.lost.len() as u64;
    println!("  payments lost           {lost:>8}   {}", check(lost == 0, "payments lost"));
    for missing in figures.lost.iter().take(10) {
        println!("      {missing}");
    }
    println!(
        "  jobs paid twice         {:>8}   {}",
        figures.paid_twice,
        check(figures.paid_twice == 0, "jobs paid twice")
    );
    let conserved =
        figures.verified.iter().all(|v| v.2 == figures.expected_supply && v.3 == figures.expected_supply);
    println!(
        "  supply conserved        {:>8}   {} (every node's balances add up to the genesis supply)",
        figures.expected_supply,
        check(conserved, "supply not conserved")
    );
    let sound = figures.verified.iter().all(|v| v.1);
    println!(
        "  balances = log replay   {:>8}   {}",
        figures.verified.len(),
        check(sound, "balances differ from a replay")
    );
    for (name, sound, supply, total, entries) in &figures.verified {
        println!("      {name:<11} entries {entries:>7}  supply {supply}  balances {total}  sound {sound}");
    }
    failed
}
