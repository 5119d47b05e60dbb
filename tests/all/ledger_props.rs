//! Property tests: random mixes of valid, forged, replayed, overspending and equivocating
//! entries, submitted to a real store (SQLite in a temp dir) with real signatures.

use std::collections::BTreeMap;

use cue_host::crypto::{Keypair, PublicKey};
use cue_host::ledger::{EquivocationProof, Genesis, Ledger, LedgerError};
use cue_host::protocol::{ChainLink, Event, Mint, Signed, Transfer, Validity};
use cue_host::store::{Admission, LedgerStore, SubmitError};
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000_000;
const ACCOUNTS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    /// A well-formed transfer at the payer's next position (may still overspend).
    Transfer { from: usize, to: usize, amount: u64 },
    /// A mint signed by `by` (only account 0 is the authority).
    Mint { by: usize, to: usize, amount: u64 },
    /// A transfer of more than the payer has.
    Overspend { from: usize, to: usize },
    /// A valid event with one byte altered.
    Forge { from: usize, at: usize, xor: u8 },
    /// The `nth` accepted event again.
    Replay { nth: usize },
    /// A second, different entry at an already used position of `from`'s chain.
    Equivocate { from: usize, to: usize, amount: u64, back: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..ACCOUNTS;
    prop_oneof![
        4 => (who.clone(), who.clone(), 1..400u64).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        1 => (0..2usize, who.clone(), 1..300u64).prop_map(|(by, to, amount)| Op::Mint { by, to, amount }),
        1 => (who.clone(), who.clone()).prop_map(|(from, to)| Op::Overspend { from, to }),
        2 => (who.clone(), any::<usize>(), 1..=255u8).prop_map(|(from, at, xor)| Op::Forge { from, at, xor }),
        1 => any::<usize>().prop_map(|nth| Op::Replay { nth }),
        1 => (who.clone(), who, 1..50u64, any::<usize>()).prop_map(|(from, to, amount, back)| Op::Equivocate { from, to, amount, back }),
    ]
}

struct World {
    keys: Vec<Keypair>,
    /// A pure ledger kept in step with the store: what the store must agree with.
    model: Ledger,
    store: LedgerStore,
    accepted: Vec<Event>,
    minted: u64,
    _dir: tempfile::TempDir,
}

impl World {
    fn new(seed: u8) -> World {
        let keys: Vec<_> = (0..ACCOUNTS).map(|i| Keypair::from_seed([seed ^ i as u8; 32])).collect();
        let genesis = Genesis {
            network_id: "prop".into(),
            mint_authority: keys[0].public(),
            allocations: keys.iter().map(|k| (k.public(), 500)).collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::open(&dir.path().join("l.sqlite3"), Some(genesis.clone())).unwrap();
        World {
            model: Ledger::new(genesis).unwrap(),
            keys,
            store,
            accepted: Vec::new(),
            minted: 0,
            _dir: dir,
        }
    }

    fn key(&self, i: usize) -> PublicKey {
        self.keys[i].public()
    }

    fn transfer_at(&self, from: usize, to: usize, amount: u64, link: ChainLink) -> Event {
        let body =
            Transfer { genesis: self.model.genesis_id(), link, to: self.key(to), amount, reference: None };
        Event::Transfer(Signed::sign(&self.keys[from], body, Validity::starting(NOW, 60_000)).unwrap())
    }

    fn submit(&mut self, event: Event) -> Result<(), SubmitError> {
        let verified = event.verify()?;
        let result = self.store.submit(verified.clone(), Admission::Fresh { now_ms: NOW }).unwrap().wait();
        match &result {
            Ok(accepted) => {
                self.model.apply(&verified).expect("the model accepts what the store accepted");
                if let Event::Mint(m) = &accepted.event {
                    self.minted += m.body().amount;
                }
                self.accepted.push(accepted.event.clone());
            }
            Err(SubmitError::Ledger(LedgerError::Equivocation { .. })) => {
                let event = verified.event();
                let proof = self.proof_of(event.signer(), event.seq().unwrap());
                self.model.flag(&proof).unwrap();
            }
            Err(_) => {}
        }
        result.map(drop)
    }

    /// The stored proof of `account`'s equivocation at `seq` (two proofs detected in the same
    /// millisecond are stored in no particular order, so the newest is not necessarily it).
    fn proof_of(&self, account: PublicKey, seq: u64) -> EquivocationProof {
        let proofs = self.store.reader().unwrap().equivocation_proofs().unwrap();
        let proofs = proofs.iter().map(|bytes| EquivocationProof::decode(bytes).unwrap());
        let mut proofs = proofs;
        proofs
            .rfind(|proof| proof.account() == account && proof.seq() == seq)
            .expect("a proof of this equivocation is stored")
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Transfer { from, to, amount } => {
                let before = self.model.balance(&self.key(from));
                let flagged = self.model.account(&self.key(from)).is_some_and(|a| a.flagged);
                let event = self.transfer_at(from, to, amount, self.model.next_link(&self.key(from)));
                let result = self.submit(event);
                let should_pass = !flagged && from != to && amount <= before;
                assert_eq!(result.is_ok(), should_pass, "{result:?}");
            }
            Op::Mint { by, to, amount } => {
                let body = Mint {
                    genesis: self.model.genesis_id(),
                    link: self.model.next_link(&self.key(by)),
                    to: self.key(to),
                    amount,
                };
                let event =
                    Event::Mint(Signed::sign(&self.keys[by], body, Validity::starting(NOW, 60_000)).unwrap());
                let flagged = self.model.account(&self.key(by)).is_some_and(|a| a.flagged);
                let result = self.submit(event);
                assert_eq!(result.is_ok(), by == 0 && !flagged, "{result:?}");
            }
            Op::Overspend { from, to } => {
                let amount = self.model.balance(&self.key(from)) + 1;
                let event = self.transfer_at(from, to, amount, self.model.next_link(&self.key(from)));
                assert!(self.submit(event).is_err());
            }
            Op::Forge { from, at, xor } => {
                let to = (from + 1) % ACCOUNTS;
                let event = self.transfer_at(from, to, 1, self.model.next_link(&self.key(from)));
                let mut bytes = event.bytes().to_vec();
                let at = at % bytes.len();
                bytes[at] ^= xor;
                let verdict = Event::decode(&bytes).and_then(Event::verify);
                assert!(verdict.is_err(), "a forgery verified: byte {at} ^ {xor:#x}");
            }
            Op::Replay { nth } => {
                if self.accepted.is_empty() {
                    return;
                }
                let event = self.accepted[nth % self.accepted.len()].clone();
                // A chained entry's replay is caught by its chain position, not a nonce window.
                match self.submit(event) {
                    Err(SubmitError::Ledger(LedgerError::Duplicate { .. })) => {}
                    // Or before that: a flagged account's entries are all refused.
                    Err(SubmitError::Ledger(LedgerError::AccountFlagged(account)))
                        if self.store.reader().unwrap().is_flagged(&account.public_key()).unwrap() => {}
                    other => panic!("a replay was not refused as one: {other:?}"),
                }
            }
            Op::Equivocate { from, to, amount, back } => {
                let chain = self.model.account(&self.key(from)).map(|a| a.chain.clone()).unwrap_or_default();
                if chain.is_empty() || from == to {
                    return;
                }
                let seq = back % chain.len();
                let link = ChainLink { seq: seq as u64, prev: seq.checked_sub(1).map(|p| chain[p]) };
                let flagged = self.model.account(&self.key(from)).is_some_and(|a| a.flagged);
                let event = self.transfer_at(from, to, amount, link);
                let result = self.submit(event);
                if flagged {
                    assert!(
                        matches!(result, Err(SubmitError::Ledger(LedgerError::AccountFlagged(_)))),
                        "{result:?}"
                    );
                    return;
                }
                assert!(
                    matches!(result, Err(SubmitError::Ledger(LedgerError::Equivocation { .. }))),
                    "{result:?}"
                );
                let proof = self.proof_of(self.key(from), seq as u64);
                assert_eq!(proof.account(), self.key(from));
                assert_eq!(proof.seq(), seq as u64);
                assert!(self.store.reader().unwrap().is_flagged(&self.key(from)).unwrap());
                // Later entries of the flagged account are refused.
                let next = self.transfer_at(from, to, 1, self.model.next_link(&self.key(from)));
                assert!(matches!(
                    self.submit(next),
                    Err(SubmitError::Ledger(LedgerError::AccountFlagged(_)))
                ));
            }
        }
    }

    fn check_invariants(&self) {
        let stored: BTreeMap<_, _> = self.store.reader().unwrap().balances().unwrap().into_iter().collect();
        let modelled: BTreeMap<_, _> = self.model.accounts().map(|(k, a)| (*k, a.balance)).collect();
        assert_eq!(stored, modelled, "store and model agree");
        let total: u64 = stored.values().sum();
        assert_eq!(total, 500 * ACCOUNTS as u64 + self.minted, "tokens are conserved");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_mixes_keep_the_ledger_sound(seed in 1..=255u8, ops in prop::collection::vec(op(), 1..40)) {
        let mut world = World::new(seed);
        for op in ops {
            world.run(op);
            world.check_invariants();
        }
    }
}
