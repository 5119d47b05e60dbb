//! Crash safety: SIGKILL the `cue` process in the middle of a stream of transfers, restart, and
//! check the stored log against the materialised balances and the acknowledgements.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use cue_host::crypto::Digest;
use cue_host::ledger::Ledger;
use cue_host::protocol::Event;
use cue_host::store::LogReader;
use serde_json::Value;

use super::ledger::Agent;

/// Balances from replaying every stored event, re-verified, through a fresh ledger; and the
/// balances the store materialised as it went.
fn replay_and_materialised(agent: &Agent) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let reader = LogReader::open(&agent.data_dir.join("ledger.sqlite3")).unwrap();
    let mut ledger = Ledger::new(reader.genesis().unwrap()).unwrap();
    reader
        .for_each_event(|bytes| {
            let event = Event::decode(bytes).unwrap().verify().unwrap();
            ledger.apply(&event).unwrap();
            Ok(())
        })
        .unwrap();
    let replayed =
        ledger.accounts().map(|(key, account)| (key.peer_id().to_string(), account.balance)).collect();
    let stored = reader
        .balances()
        .unwrap()
        .into_iter()
        .map(|(key, balance)| (key.peer_id().to_string(), balance))
        .collect();
    (replayed, stored)
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_transfer() {
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(root.path(), "a");
    let b = Agent::new(root.path(), "b");
    let (pa, pb) = (a.peer_id(), b.peer_id());
    let genesis = a.genesis.to_str().unwrap().to_owned();
    a.ok(&["network", "init", "--out", &genesis, "--alloc", &format!("{pa}=1000000")]);

    let mut child = a
        .command()
        .args(["wallet", "transfer", &pb, "1", "--count", "1000000", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    for line in lines.by_ref() {
        acknowledged.push(line.unwrap());
        if acknowledged.len() == 2000 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix: no destructor, no flush, no checkpoint.
    child.wait().unwrap();
    // Acknowledgements already written to the pipe before the kill count too.
    acknowledged.extend(lines.map_while(Result::ok));
    assert!(acknowledged.len() >= 2000);

    // Restart: the next process recovers the WAL and carries on the chain.
    let balance_b = a.balance(&pb);
    let (replayed, stored) = replay_and_materialised(&a);
    assert_eq!(replayed, stored, "materialised balances equal a replay of the log");
    assert_eq!(stored[&pb], balance_b);
    assert_eq!(stored[&pa] + stored[&pb], 1_000_000);

    let reader = LogReader::open(&a.data_dir.join("ledger.sqlite3")).unwrap();
    let mut seqs = HashSet::new();
    for line in &acknowledged {
        let ack: Value = serde_json::from_str(line).unwrap();
        let hash = Digest::from_hex(ack["hash"].as_str().unwrap()).unwrap();
        assert!(reader.event_bytes(&hash).unwrap().is_some(), "acknowledged {hash} is stored");
        seqs.insert(ack["seq"].as_u64().unwrap());
    }
    assert!(balance_b >= acknowledged.len() as u64);
    assert_eq!(seqs.len(), acknowledged.len());

    let more = a.ok(&["wallet", "transfer", &pb, "1", "--count", "10", "--json"]);
    assert_eq!(more.lines().count(), 10);
    let (replayed, stored) = replay_and_materialised(&a);
    assert_eq!(replayed, stored);
    assert_eq!(stored[&pb], balance_b + 10);
}
