//! The `cue` CLI end to end: identity, genesis, mint, transfer, balance, history, and the
//! refusals of an overspend, a forged event and a replay.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cue_host::crypto::Digest;
use cue_host::store::LogReader;
use serde_json::Value;

/// One agent: its own data dir, sharing a network's genesis file.
pub(crate) struct Agent {
    pub(crate) data_dir: PathBuf,
    pub(crate) genesis: PathBuf,
}

impl Agent {
    pub(crate) fn new(root: &Path, name: &str) -> Agent {
        Agent { data_dir: root.join(name), genesis: root.join("genesis.toml") }
    }

    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cue"));
        command.env("CUE_DATA_DIR", &self.data_dir).env("CUE_GENESIS", &self.genesis).env_remove("RUST_LOG");
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run cue")
    }

    /// Runs and expects success, returning stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "cue {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs and expects failure, returning stderr.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "cue {args:?} should have failed");
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    pub(crate) fn peer_id(&self) -> String {
        let json: Value = serde_json::from_str(&self.ok(&["id", "--json"])).unwrap();
        json["peer_id"].as_str().unwrap().to_owned()
    }

    pub(crate) fn balance(&self, peer: &str) -> u64 {
        let json: Value = serde_json::from_str(&self.ok(&["wallet", "balance", peer, "--json"])).unwrap();
        assert_eq!(json["peer_id"], peer);
        json["balance"].as_u64().unwrap()
    }

    pub(crate) fn history_len(&self, peer: &str) -> usize {
        let json: Value = serde_json::from_str(&self.ok(&["wallet", "history", peer, "--json"])).unwrap();
        json.as_array().unwrap().len()
    }
}

/// A network of two agents, `a` (mint authority, 1000 tokens) and `b`.
fn network(root: &Path) -> (Agent, Agent, String, String) {
    let a = Agent::new(root, "a");
    let b = Agent::new(root, "b");
    let (pa, pb) = (a.peer_id(), b.peer_id());
    let genesis = a.genesis.to_str().unwrap().to_owned();
    a.ok(&["network", "init", "--out", &genesis, "--alloc", &format!("{pa}=1000")]);
    (a, b, pa, pb)
}

#[test]
fn id_is_a_libp2p_peer_id_in_a_private_key_file() {
    let root = tempfile::tempdir().unwrap();
    let a = Agent::new(root.path(), "a");
    let first = a.peer_id();
    assert!(first.starts_with("12D3KooW"), "{first}");
    assert_eq!(a.peer_id(), first, "the key is created once and reused");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(a.data_dir.join("identity.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn mint_transfer_balance_history_through_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, pa, pb) = network(root.path());

    assert_eq!(
        a.ok(&["wallet", "balance", "--json"]).trim(),
        format!(r#"{{"peer_id":"{pa}","balance":1000,"locked":0}}"#)
    );
    a.ok(&["wallet", "mint", &pb, "50"]);
    let transfer: Value = serde_json::from_str(&a.ok(&["wallet", "transfer", &pb, "100", "--json"])).unwrap();
    assert_eq!(transfer["amount"], 100);
    assert_eq!(transfer["seq"], 1, "the mint was entry 0 of a's chain");
    assert_eq!(a.balance(&pa), 900);
    assert_eq!(a.balance(&pb), 150);
    assert_eq!(a.history_len(&pa), 2);
    assert_eq!(a.history_len(&pb), 2);

    let err = b.fails(&["wallet", "mint", &pb, "5"]);
    assert!(err.contains("is not the mint authority"), "{err}");

    // A payment for a contract is found through the contract id.
    let contract = "ab".repeat(32);
    let paid: Value = serde_json::from_str(&a.ok(&[
        "wallet",
        "transfer",
        &pb,
        "7",
        "--reference",
        &format!("contract:{contract}"),
        "--json",
    ]))
    .unwrap();
    let reader = LogReader::open(&a.data_dir.join("ledger.sqlite3")).unwrap();
    let payments = reader.events_linking_to(&Digest::from_hex(&contract).unwrap()).unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].to_string(), paid["hash"].as_str().unwrap());

    // The history reads page by page: each page starts before the last one's oldest entry,
    // and together they are the whole history, newest first, each entry once.
    a.ok(&["wallet", "transfer", &pb, "1", "--count", "5"]);
    let hashes = |json: &str| -> Vec<(String, i64)> {
        let page: Value = serde_json::from_str(json).unwrap();
        page.as_array()
            .unwrap()
            .iter()
            .map(|e| (e["hash"].as_str().unwrap().to_owned(), e["log_position"].as_i64().unwrap()))
            .collect()
    };
    let whole = hashes(&a.ok(&["wallet", "history", &pa, "--json"]));
    assert_eq!(whole.len(), 8, "the mint, 2 transfers and 5 more");
    let (mut paged, mut before) = (Vec::new(), None::<i64>);
    loop {
        let mut args = vec!["wallet", "history", &pa, "--json", "--limit", "3"];
        let position = before.map(|b| b.to_string());
        if let Some(position) = &position {
            args.extend(["--before", position]);
        }
        let page = hashes(&a.ok(&args));
        assert!(page.len() <= 3);
        before = page.last().map(|(_, position)| *position);
        paged.extend(page);
        if before.is_none() {
            break;
        }
    }
    assert_eq!(paged, whole);
}

#[test]
fn overspend_forgery_and_replay_are_refused_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, pa, pb) = network(root.path());
    let transfer: Value = serde_json::from_str(&a.ok(&["wallet", "transfer", &pb, "100", "--json"])).unwrap();
    let hash = transfer["hash"].as_str().unwrap();

    let err = a.fails(&["wallet", "transfer", &pb, "901"]);
    assert!(err.contains("insufficient balance: 900 available, 901 requested"), "{err}");
    assert_eq!((a.balance(&pa), a.balance(&pb), a.history_len(&pa)), (900, 100, 1));

    // The signed event travels as a file to b's own ledger, which verifies and applies it.
    let file = root.path().join("transfer.cbor");
    a.ok(&["wallet", "export", hash, "--out", file.to_str().unwrap()]);
    b.ok(&["wallet", "import", file.to_str().unwrap()]);
    assert_eq!((b.balance(&pa), b.balance(&pb)), (900, 100));

    // Replay: the same file again, as new and as history.
    let err = b.fails(&["wallet", "import", file.to_str().unwrap()]);
    assert!(err.contains("replay"), "{err}");
    let err = b.fails(&["wallet", "import", "--historical", file.to_str().unwrap()]);
    assert!(err.contains("replay"), "{err}");

    // Forgery: any altered byte (here the amount, then the signature) is refused.
    let bytes = std::fs::read(&file).unwrap();
    let forged = root.path().join("forged.cbor");
    let mut altered = bytes.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    std::fs::write(&forged, &altered).unwrap();
    let err = b.fails(&["wallet", "import", forged.to_str().unwrap()]);
    assert!(err.contains("bad signature"), "{err}");
    let mut altered = bytes.clone();
    let amount_at = altered.len() - 64 - 2 - 2; // ..., 0x18 100, null, 0x58 0x40 <signature>
    assert_eq!(altered[amount_at], 100);
    altered[amount_at] = 99;
    std::fs::write(&forged, &altered).unwrap();
    let err = b.fails(&["wallet", "import", forged.to_str().unwrap()]);
    assert!(err.contains("bad signature"), "{err}");

    assert_eq!((b.balance(&pa), b.balance(&pb), b.history_len(&pb)), (900, 100, 1));
}

#[test]
fn a_ledger_refuses_another_networks_genesis() {
    let root = tempfile::tempdir().unwrap();
    let (a, _b, pa, _pb) = network(root.path());
    a.ok(&["wallet", "balance"]);
    let other = root.path().join("other.toml");
    a.ok(&["network", "init", "--out", other.to_str().unwrap(), "--alloc", &format!("{pa}=5")]);
    let err = a.fails(&["--genesis", other.to_str().unwrap(), "wallet", "balance"]);
    assert!(err.contains("belongs to network"), "{err}");
}
