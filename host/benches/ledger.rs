//! Ledger throughput: verify + apply + durably store signed transfers (group commit), measured
//! against raw ed25519 verification of the same number of messages in the same run.
//!
//! Run: `cargo bench -p cue-host --bench ledger` (optionally `-- <transfers>`).
//! The database lives under `target/tmp` — on the real disk, never a tmpfs — with WAL and
//! `synchronous = FULL`, so every acknowledged batch has been fsynced.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cue_host::crypto::{Keypair, PublicKey, Signature};
use cue_host::ledger::Genesis;
use cue_host::protocol::{ChainLink, Event, Signed, Transfer, Validity};
use cue_host::store::{Admission, LedgerStore};

const PAYERS: usize = 8;
const IN_FLIGHT: usize = 2048;
const NOW: u64 = 1_800_000_000_000;

fn main() {
    let transfers: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(50_000);
    let payers: Vec<Keypair> = (0..PAYERS).map(|i| Keypair::from_seed([i as u8 + 1; 32])).collect();
    let payee = Keypair::from_seed([0xee; 32]).public();
    let genesis = Genesis {
        network_id: "bench".into(),
        mint_authority: payers[0].public(),
        allocations: payers.iter().map(|k| (k.public(), 1_000_000_000)).collect(),
    };
    let encoded = sign_transfers(&payers, payee, &genesis, transfers);
    println!("{transfers} signed transfers, {} bytes each", encoded[0].len());

    let raw = raw_verification(&payers, &encoded);
    report("raw ed25519 verify (same messages)", transfers, raw);

    let started = Instant::now();
    for bytes in &encoded {
        let verified = Event::decode(bytes).and_then(Event::verify);
        assert!(verified.is_ok());
    }
    report("decode + verify envelope", transfers, started.elapsed());

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store = LedgerStore::open(&dir.path().join("bench.sqlite3"), Some(genesis)).expect("open");
    let started = Instant::now();
    let mut pending = VecDeque::with_capacity(IN_FLIGHT);
    for bytes in &encoded {
        let event = Event::decode(bytes).and_then(Event::verify).expect("valid");
        pending.push_back(store.submit(event, Admission::Fresh { now_ms: NOW }).expect("queue"));
        if pending.len() == IN_FLIGHT {
            pending.pop_front().map(|p| p.wait().expect("accepted"));
        }
    }
    for p in pending {
        p.wait().expect("accepted");
    }
    let full = started.elapsed();
    report("decode + verify + apply + durable store", transfers, full);
    println!("full pipeline costs {:.2}x raw verification", full.as_secs_f64() / raw.as_secs_f64());
    let reader = store.reader().expect("reader");
    assert_eq!(reader.balance(&payee).expect("balance"), transfers as u64);
}

fn report(what: &str, n: usize, took: Duration) {
    println!(
        "{what:<42} {:>9.0} /s  ({:.1} µs each, {:.2} s total)",
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64,
        took.as_secs_f64()
    );
}

/// Transfers of 1 token from the payers in turn, each chained to its payer's previous entry.
fn sign_transfers(payers: &[Keypair], payee: PublicKey, genesis: &Genesis, n: usize) -> Vec<Vec<u8>> {
    let genesis_id = genesis.id();
    let mut links = vec![ChainLink::FIRST; payers.len()];
    (0..n)
        .map(|i| {
            let p = i % payers.len();
            let body =
                Transfer { genesis: genesis_id, link: links[p], to: payee, amount: 1, reference: None };
            let signed = Signed::sign(&payers[p], body, Validity::starting(NOW, 3_600_000)).expect("sign");
            links[p] = ChainLink { seq: links[p].seq + 1, prev: Some(signed.hash()) };
            signed.bytes().to_vec()
        })
        .collect()
}

/// Time to verify one ed25519 signature per message, nothing else.
fn raw_verification(payers: &[Keypair], messages: &[Vec<u8>]) -> Duration {
    let signed: Vec<(PublicKey, &[u8], Signature)> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let key = &payers[i % payers.len()];
            (key.public(), m.as_slice(), key.sign(m))
        })
        .collect();
    let started = Instant::now();
    for (key, message, signature) in &signed {
        assert!(key.verify(message, signature).is_ok());
    }
    started.elapsed()
}
