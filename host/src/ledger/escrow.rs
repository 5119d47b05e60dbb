//! The escrow's rules: what a lock holds while it is open, and which releases may end it.
//! Pure, like the rest of the ledger; `state.rs` applies what these decide.

use std::collections::{HashMap, VecDeque};

use super::LedgerError;
use crate::crypto::{Digest, PublicKey};
use crate::protocol::{ClaimEvidence, JobId, Lock, Release, RunOutcome, Signed};

/// A lock not yet released: its amount is out of the payer's balance and in no one else's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenLock {
    /// The consumer who set the amount aside (the lock's signer).
    pub payer: PublicKey,
    /// The provider it is for.
    pub payee: PublicKey,
    /// Tokens held.
    pub amount: u64,
    /// The job it funds.
    pub job: JobId,
}

impl OpenLock {
    /// The open lock a `TOKEN_LOCK` makes.
    pub fn of(lock: &Signed<Lock>) -> OpenLock {
        let body = lock.body();
        OpenLock { payer: lock.header().signer, payee: body.to, amount: body.amount, job: body.job }
    }

    /// Checks that `release` may end this lock; answers what it pays the payee. The payer may
    /// pay any part of the lock (its payment, or its refund when nothing was delivered); the
    /// payee may claim, once the contract's payment deadline has passed, exactly what its
    /// evidence makes due ([`claim_amount`]).
    pub fn check(&self, release: &Signed<Release>) -> Result<u64, LedgerError> {
        let body = release.body();
        if body.paid > self.amount {
            return Err(LedgerError::PaidAboveLock { paid: body.paid, amount: self.amount });
        }
        let signer = release.header().signer;
        if signer == self.payer {
            if body.evidence.is_some() {
                return Err(LedgerError::BadClaim("a consumer's release carries no evidence".into()));
            }
            return Ok(body.paid);
        }
        if signer != self.payee {
            return Err(LedgerError::NotLockParty);
        }
        let evidence = body
            .evidence
            .as_ref()
            .ok_or_else(|| LedgerError::BadClaim("a claim needs its evidence".into()))?;
        self.check_evidence(evidence)?;
        let pay_by_ms = evidence.accept.body().pay_by_ms;
        let timestamp_ms = release.header().timestamp_ms;
        if timestamp_ms < pay_by_ms {
            return Err(LedgerError::ClaimTooEarly { timestamp_ms, pay_by_ms });
        }
        let due = claim_amount(evidence, self.amount);
        if body.paid != due {
            return Err(LedgerError::BadClaim(format!("the evidence makes {due} due, not {}", body.paid)));
        }
        Ok(due)
    }

    /// The accept and receipt are the payee's, for this lock's job and payer, and the receipt
    /// is of that contract.
    fn check_evidence(&self, evidence: &ClaimEvidence) -> Result<(), LedgerError> {
        let (accept, receipt) = (&evidence.accept, &evidence.receipt);
        let bad = |why: &str| Err(LedgerError::BadClaim(why.to_owned()));
        if accept.header().signer != self.payee || receipt.header().signer != self.payee {
            return bad("the contract and receipt must be signed by the lock's provider");
        }
        if accept.body().job_id != self.job || receipt.body().job_id != self.job {
            return bad("the contract and receipt must be of the lock's job");
        }
        if accept.body().consumer != self.payer {
            return bad("the contract must be with the lock's consumer");
        }
        if receipt.body().contract != accept.hash() {
            return bad("the receipt must be of the contract given");
        }
        Ok(())
    }
}

/// What a provider may claim from a lock of `amount` with a contract and its receipt: a run
/// that delivered an output earns what the receipt makes due (the contract's price for its
/// fuel, never above the lock); a failure earns only the base fee, since a failure its
/// consumer did not confirm (by paying for it) may be made up.
pub fn claim_amount(evidence: &ClaimEvidence, amount: u64) -> u64 {
    let accept = evidence.accept.body();
    match evidence.receipt.body().outcome {
        RunOutcome::Output(_) => accept.price(evidence.receipt.body().fuel_used, amount),
        RunOutcome::Failed { .. } => accept.base_fee.min(amount),
    }
}

/// The releases this node applied most recently, by lock (bounded: the oldest are forgotten,
/// and a release of a forgotten lock is refused as [`LedgerError::LockNotOpen`]). Tells a
/// replay of a release from a second release of the same lock.
#[derive(Clone, Debug, Default)]
pub(super) struct Released {
    by_lock: HashMap<Digest, Digest>,
    order: VecDeque<Digest>,
}

/// Releases remembered.
const REMEMBERED_RELEASES: usize = 65_536;

impl Released {
    pub(super) fn get(&self, lock: &Digest) -> Option<Digest> {
        self.by_lock.get(lock).copied()
    }

    pub(super) fn insert(&mut self, lock: Digest, release: Digest) {
        if self.order.len() == REMEMBERED_RELEASES
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_lock.remove(&oldest);
        }
        self.by_lock.insert(lock, release);
        self.order.push_back(lock);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crypto::Keypair;
    use crate::ledger::{Genesis, Ledger, LockChange};
    use crate::protocol::{ChainLink, ComputeAccept, Event, Receipt, Signed, Validity, Verified};

    const NOW: u64 = 1_800_000_000_000;
    const PAY_BY: u64 = NOW + 60_000;
    const JOB: JobId = JobId([7; 16]);

    struct Market {
        consumer: Keypair,
        provider: Keypair,
        stranger: Keypair,
        ledger: Ledger,
    }

    fn market() -> Market {
        let (authority, consumer, provider, stranger) = (
            Keypair::from_seed([1; 32]),
            Keypair::from_seed([2; 32]),
            Keypair::from_seed([3; 32]),
            Keypair::from_seed([4; 32]),
        );
        let genesis = Genesis {
            network_id: "test".into(),
            mint_authority: authority.public(),
            allocations: BTreeMap::from([(consumer.public(), 100)]),
        };
        Market { ledger: Ledger::new(genesis).unwrap(), consumer, provider, stranger }
    }

    impl Market {
        fn lock(&self, amount: u64, job: JobId) -> Verified {
            let body = Lock {
                genesis: self.ledger.genesis_id(),
                link: self.ledger.next_link(&self.consumer.public()),
                to: self.provider.public(),
                amount,
                job,
            };
            Verified::sign_lock(&self.consumer, body, Validity::starting(NOW, 60_000)).unwrap()
        }

        fn release(
            &self,
            by: &Keypair,
            lock: Digest,
            paid: u64,
            evidence: Option<ClaimEvidence>,
            at: u64,
        ) -> Verified {
            let receipt = evidence.as_ref().map(|e| e.receipt.hash());
            let evidence = evidence.map(Box::new);
            let body = Release { genesis: self.ledger.genesis_id(), lock, paid, receipt, evidence };
            // Through the bytes, as a peer's release arrives: the evidence's signatures are checked.
            let signed = Signed::sign(by, body, Validity::starting(at, 60_000)).unwrap();
            Event::decode(signed.bytes()).unwrap().verify().unwrap()
        }

        /// The provider's contract for `job` and its receipt of a run that used `fuel`.
        fn evidence(&self, job: JobId, fuel: u64, outcome: RunOutcome) -> ClaimEvidence {
            let accept = ComputeAccept {
                request: Digest([9; 32]),
                job_id: job,
                consumer: self.consumer.public(),
                price_per_mfuel: 2,
                base_fee: 5,
                engine: "e".into(),
                pay_by_ms: PAY_BY,
            };
            let accept = Signed::sign(&self.provider, accept, Validity::starting(NOW, 60_000)).unwrap();
            let receipt = Receipt {
                contract: accept.hash(),
                job_id: job,
                component: Digest([1; 32]),
                input: Digest([2; 32]),
                outcome,
                fuel_used: fuel,
                wall_us: 10,
                engine: "e".into(),
            };
            let receipt = Signed::sign(&self.provider, receipt, Validity::starting(NOW, 60_000)).unwrap();
            ClaimEvidence { accept, receipt }
        }

        fn balances(&self) -> (u64, u64) {
            (self.ledger.balance(&self.consumer.public()), self.ledger.balance(&self.provider.public()))
        }
    }

    #[test]
    fn a_lock_sets_the_offer_aside_and_the_consumers_release_pays_part_and_refunds_the_rest() {
        let mut m = market();
        let lock = m.lock(40, JOB);
        let applied = m.ledger.apply(&lock).unwrap();
        assert!(matches!(applied.lock, Some(LockChange::Opened(_, OpenLock { amount: 40, .. }))));
        assert_eq!(m.balances(), (60, 0));
        assert_eq!((m.ledger.locked(&m.consumer.public()), m.ledger.supply()), (40, 100));

        // The lock is a chain entry: a second one beyond the balance is refused.
        let too_much = m.lock(61, JobId([8; 16]));
        assert!(matches!(m.ledger.apply(&too_much), Err(LedgerError::InsufficientBalance { .. })));

        let lock_hash = lock.event().hash();
        let pay = m.release(&m.consumer, lock_hash, 15, None, NOW);
        m.ledger.apply(&pay).unwrap();
        assert_eq!(m.balances(), (85, 15));
        assert_eq!((m.ledger.locked(&m.consumer.public()), m.ledger.supply()), (0, 100));

        // Released once: a replay is told from a second release, and both change nothing.
        assert_eq!(m.ledger.apply(&pay), Err(LedgerError::AlreadyReleased { lock: lock_hash, same: true }));
        let again = m.release(&m.consumer, lock_hash, 0, None, NOW + 1);
        assert_eq!(
            m.ledger.apply(&again),
            Err(LedgerError::AlreadyReleased { lock: lock_hash, same: false })
        );
        let evidence = m.evidence(JOB, 1_000_000, RunOutcome::Output(Digest([0; 32])));
        let late_claim = m.release(&m.provider, lock_hash, 7, Some(evidence), PAY_BY);
        assert!(m.ledger.apply(&late_claim).is_err());
        assert_eq!(m.balances(), (85, 15));
    }

    #[test]
    fn a_provider_claims_what_its_receipt_makes_due_only_after_the_deadline() {
        let mut m = market();
        let lock = m.lock(40, JOB);
        m.ledger.apply(&lock).unwrap();
        let hash = lock.event().hash();
        let output = RunOutcome::Output(Digest([0; 32]));
        // 5 + 2 per Mfuel × 3 Mfuel = 11.
        let evidence = m.evidence(JOB, 3_000_000, output.clone());
        assert_eq!(claim_amount(&evidence, 40), 11);

        let refusals = [
            (m.release(&m.provider, hash, 11, Some(evidence.clone()), PAY_BY - 1), "early"),
            (m.release(&m.provider, hash, 12, Some(evidence.clone()), PAY_BY), "amount"),
            (m.release(&m.provider, hash, 40, None, PAY_BY), "no evidence"),
            (m.release(&m.provider, hash, 41, Some(evidence.clone()), PAY_BY), "above"),
            (m.release(&m.stranger, hash, 0, None, PAY_BY), "stranger"),
            (m.release(&m.consumer, hash, 11, Some(evidence.clone()), PAY_BY), "payer with evidence"),
            (
                m.release(&m.provider, hash, 11, Some(m.evidence(JobId([8; 16]), 3_000_000, output)), PAY_BY),
                "job",
            ),
            (m.release(&m.provider, Digest([5; 32]), 11, Some(evidence.clone()), PAY_BY), "unknown"),
        ];
        for (release, what) in refusals {
            let err = m.ledger.apply(&release).unwrap_err();
            let expected = match what {
                "early" => matches!(err, LedgerError::ClaimTooEarly { pay_by_ms: PAY_BY, .. }),
                "above" => matches!(err, LedgerError::PaidAboveLock { paid: 41, amount: 40 }),
                "stranger" => err == LedgerError::NotLockParty,
                "unknown" => matches!(err, LedgerError::LockNotOpen(_)),
                _ => matches!(err, LedgerError::BadClaim(_)),
            };
            assert!(expected, "{what}: {err:?}");
            assert_eq!(m.balances(), (60, 0), "{what} moved tokens");
        }
        m.ledger.apply(&m.release(&m.provider, hash, 11, Some(evidence), PAY_BY)).unwrap();
        assert_eq!(m.balances(), (89, 11));
    }

    #[test]
    fn a_claimed_failure_earns_only_the_base_fee_and_a_stranger_signature_is_no_evidence() {
        let m = market();
        let failed = RunOutcome::Failed { kind: "trap".into(), message: "made up".into() };
        assert_eq!(claim_amount(&m.evidence(JOB, 10_000_000_000, failed), 40), 5);

        // Evidence signed by another key than the lock's provider is refused.
        let mut m = market();
        let lock = m.lock(40, JOB);
        m.ledger.apply(&lock).unwrap();
        let mut evidence = m.evidence(JOB, 0, RunOutcome::Output(Digest([0; 32])));
        evidence.accept =
            Signed::sign(&m.stranger, evidence.accept.body().clone(), Validity::starting(NOW, 60_000))
                .unwrap();
        let claim = m.release(&m.provider, lock.event().hash(), 5, Some(evidence), PAY_BY);
        assert!(matches!(m.ledger.apply(&claim), Err(LedgerError::BadClaim(_))));
        let _ = ChainLink::FIRST;
    }

    #[test]
    fn a_restored_ledger_keeps_its_open_locks_in_the_supply() {
        let mut m = market();
        let lock = m.lock(40, JOB);
        m.ledger.apply(&lock).unwrap();
        let accounts = m.ledger.accounts().map(|(k, a)| (*k, a.clone())).collect();
        let locks = m.ledger.locks().map(|(h, l)| (*h, l.clone())).collect();
        let restored = Ledger::restore(m.ledger.genesis().clone(), accounts, locks).unwrap();
        assert_eq!((restored.supply(), restored.locked(&m.consumer.public())), (100, 40));
        assert!(restored.lock(&lock.event().hash()).is_some());
    }
}
