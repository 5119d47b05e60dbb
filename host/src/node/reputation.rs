//! What this node thinks of others: its reputation book (`market::reputation`), fed with its
//! own verdicts and the attestations peers gossip, and its verdicts owed an attestation. A
//! contract's end stores this node's verdict in the same commit (owed, see [`owed`]); once
//! stored, it counts in the book at once and the attester (`gossip::attestations`) is woken
//! to sign it, with others, in a set.

use std::sync::Mutex;

use tokio::sync::Notify;

use super::journal::Journal;
use super::lock;
use crate::clock::now_ms;
use crate::crypto::{Digest, PublicKey};
use crate::market::{Attestation, Recorded, ReputationBook, ReputationLimits};
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
        Reputation { book: Mutex::new(ReputationBook::new(me, limits)), me, owed: Notify::new(), journal }
    }

    /// A peer's reputation here: 0 for an account the ledger flagged for equivocation, else
    /// from the attestations this node holds (see `market::reputation`).
    pub(super) fn of(&self, peer: &PublicKey) -> f64 {
        if self.journal.is_flagged(peer) {
            return 0.0;
        }
        lock(&self.book).reputation(peer, now_ms())
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
    pub(super) fn hear(&self, attester: PublicKey, at_ms: u64, said: &[OutcomeAttestation]) -> bool {
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
