//! What this node thinks of others: its reputation book (`market::reputation`), fed with its
//! own verdicts and the attestations peers gossip, and its verdicts owed an attestation. A
//! contract's end stores this node's verdict in the same commit (owed, see [`owed`]); once
//! stored, it counts in the book at once and the attester (`gossip::attestations`) is woken
//! to sign it, with others, in a set.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Mutex;

use tokio::sync::Notify;

use super::journal::Journal;
use super::lock;
use crate::clock::now_ms;
use crate::crypto::{Digest, PublicKey};
use crate::market::{Attestation, NEUTRAL_REPUTATION, Recorded, ReputationBook, ReputationLimits};
use crate::protocol::{OutcomeAttestation, Verdict};
use crate::store::Records;

/// The reputation book and the attester's wake-up.
pub(super) struct Reputation {
    book: Mutex<ReputationBook>,
    /// Whose verdicts the book counts as this node's own experience.
    me: PublicKey,
    /// Wakes the attester: a verdict of this node is owed an attestation.
    owed: Notify,
    /// Where owed verdicts are stored, and which accounts the ledger flagged.
    journal: Journal,
    /// Contracts an attestation's evidence proved (both signatures checked), so the other
    /// party's attestation of the same contract is not checked again (bounded).
    proven: Mutex<Proven>,
    /// Every peer's reputation, computed at most every [`RECOMPUTE_EVERY_MS`] (the whole trust
    /// graph is walked to compute one), with when.
    cache: Mutex<Option<(u64, BTreeMap<PublicKey, f64>)>>,
}

/// How long a computed set of reputations serves: a verdict counts in what others see of a
/// peer within this (a flag at once: it is checked apart).
const RECOMPUTE_EVERY_MS: u64 = 250;
/// Contracts remembered as proved.
const PROVEN_CONTRACTS: usize = 65_536;

/// A bounded set of proved contracts, the oldest forgotten first.
#[derive(Default)]
struct Proven {
    set: HashSet<Digest>,
    order: VecDeque<Digest>,
}

/// This node's verdict on `subject` for `contract`, to be stored owed (in [`Records::owe`], as
/// its body bytes) with the contract's end; once stored, tell [`Reputation::counted`].
pub(super) fn owed(
    contract: Digest,
    subject: PublicKey,
    verdict: Verdict,
    evidence: Vec<Vec<u8>>,
) -> OutcomeAttestation {
    OutcomeAttestation { contract, subject, verdict, evidence }
}

impl Reputation {
    /// The book of `me` (this node's key), with owed verdicts stored through `journal`.
    pub(super) fn new(me: PublicKey, limits: ReputationLimits, journal: Journal) -> Reputation {
        Reputation {
            book: Mutex::new(ReputationBook::new(me, limits)),
            me,
            owed: Notify::new(),
            journal,
            proven: Mutex::default(),
            cache: Mutex::default(),
        }
    }

    /// A peer's reputation here: 0 for an account the ledger flagged for equivocation, else
    /// from the attestations this node holds (see `market::reputation`).
    pub(super) fn of(&self, peer: &PublicKey) -> f64 {
        if self.journal.is_flagged(peer) {
            return 0.0;
        }
        let now = now_ms();
        let mut cache = lock(&self.cache);
        let fresh = cache.as_ref().is_some_and(|(at, _)| now.saturating_sub(*at) < RECOMPUTE_EVERY_MS);
        if !fresh {
            *cache = Some((now, lock(&self.book).reputations(now)));
        }
        let (_, all) = cache.as_ref().expect("computed above");
        all.get(peer).copied().unwrap_or(NEUTRAL_REPUTATION)
    }

    /// Whether an attestation's evidence proved `contract` before.
    pub(super) fn is_proven(&self, contract: &Digest) -> bool {
        lock(&self.proven).set.contains(contract)
    }

    /// Remembers that `contract` was proved (both parties' signatures checked).
    pub(super) fn proved(&self, contract: Digest) {
        let mut proven = lock(&self.proven);
        if proven.set.insert(contract) {
            proven.order.push_back(contract);
            if proven.order.len() > PROVEN_CONTRACTS
                && let Some(oldest) = proven.order.pop_front()
            {
                proven.set.remove(&oldest);
            }
        }
    }

    /// Forgets what `account` attested and what was attested about it: an equivocation proof
    /// convicts it (its reputation is 0 from the ledger's flag already).
    pub(super) fn flag(&self, account: PublicKey) {
        lock(&self.book).flag(account);
        *lock(&self.cache) = None;
    }

    /// Stores this node's verdict on `subject` for a contract with `with` (one commit), counts
    /// it in the book, and wakes the attester.
    pub(super) async fn attest(
        &self,
        contract: Digest,
        subject: PublicKey,
        verdict: Verdict,
        evidence: Vec<Vec<u8>>,
        mut with: Records,
    ) {
        let owed = owed(contract, subject, verdict, evidence);
        with.owe.push(owed.to_body_bytes());
        if self.journal.commit(with).await.is_ok() {
            self.counted(&owed);
        }
    }

    /// Once an owed verdict is stored: counts it in the book (it is this node's own
    /// experience) and wakes the attester.
    pub(super) fn counted(&self, owed: &OutcomeAttestation) {
        let attestation =
            Attestation { attester: self.me, subject: owed.subject, verdict: owed.verdict, at_ms: now_ms() };
        lock(&self.book).record(attestation, now_ms());
        self.owed.notify_one();
    }

    /// Weighs what `attester` said at `at_ms` (its signature checked); answers whether any of
    /// it is new to the book.
    /// An account the ledger flagged for equivocation is not heard.
    pub(super) fn hear(&self, attester: PublicKey, at_ms: u64, said: &[OutcomeAttestation]) -> bool {
        if self.journal.is_flagged(&attester) {
            return false;
        }
        let mut book = lock(&self.book);
        let mut new = false;
        for body in said {
            let attestation = Attestation { attester, subject: body.subject, verdict: body.verdict, at_ms };
            new |= book.record(attestation, now_ms()) == Recorded::New;
        }
        new
    }

    /// What the attester waits on.
    pub(super) fn owed_signal(&self) -> &Notify {
        &self.owed
    }
}
