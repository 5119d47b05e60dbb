//! The escrow's event bodies: `TOKEN_LOCK` (a consumer sets an offer aside for one job with one
//! provider, before the job runs) and `TOKEN_RELEASE` (the lock ends: paid to the provider,
//! the rest back to the consumer). See docs/ledger.md §4–5 and the trust model in §8.

use super::codec::{Reader, Writer};
use super::compute::{ComputeAccept, JobId, Receipt};
use super::envelope::EventBody;
use super::token::{ChainLink, read_account};
use super::{EventError, EventKind, Signed};
use crate::crypto::{Digest, PublicKey};

/// `TOKEN_LOCK`: the signer (a consumer) moves `amount` from its balance into a lock for the
/// job `job` with the provider `to`. A chain entry of the signer, like a transfer: a lock
/// spends the signer's balance, so two locks at one position are an equivocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// The network (its genesis id) this entry belongs to.
    pub genesis: Digest,
    /// Position in the signer's chain.
    pub link: ChainLink,
    /// The provider the lock is for: the only party besides the signer who may release it.
    pub to: PublicKey,
    /// Tokens set aside (the job's offer), > 0.
    pub amount: u64,
    /// The job the lock funds (the request's job id).
    pub job: JobId,
}

impl EventBody for Lock {
    const KIND: EventKind = EventKind::TokenLock;

    fn write(&self, w: &mut Writer) {
        w.array(6).bytes(&self.genesis.0);
        self.link.write(w);
        w.bytes(self.to.as_bytes()).uint(self.amount).bytes(&self.job.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Lock, EventError> {
        r.array(6)?;
        Ok(Lock {
            genesis: Digest(r.byte_array()?),
            link: ChainLink::read(r)?,
            to: read_account(r)?,
            amount: r.uint()?,
            job: JobId(r.byte_array()?),
        })
    }
}

/// What a provider's claim shows: the contract it signed for the lock's job and its receipt
/// of the run. Both signed by the provider; the ledger checks they name the lock's job and
/// consumer, and derives the amount claimed from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimEvidence {
    /// The `COMPUTE_ACCEPT`.
    pub accept: Signed<ComputeAccept>,
    /// The `RECEIPT` of the run.
    pub receipt: Signed<Receipt>,
}

/// `TOKEN_RELEASE`: ends a lock. Signed by the lock's payer (the consumer's payment, or its
/// refund when the job was not delivered), or by its payee (a provider's claim, with
/// [`ClaimEvidence`], once the contract's payment deadline has passed). `paid` goes to the
/// payee, the rest of the lock back to the payer. Not a chain entry: it spends the lock, not a
/// balance, and a lock is released once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The network (its genesis id) this entry belongs to.
    pub genesis: Digest,
    /// The hash of the `TOKEN_LOCK` released.
    pub lock: Digest,
    /// Tokens paid to the lock's payee (0 to the lock's amount).
    pub paid: u64,
    /// The receipt this pays for, if any (a claim names its evidence's receipt).
    pub receipt: Option<Digest>,
    /// A claim's evidence (boxed: it holds two whole events); `None` in a payer's release.
    pub evidence: Option<Box<ClaimEvidence>>,
}

impl EventBody for Release {
    const KIND: EventKind = EventKind::TokenRelease;

    fn write(&self, w: &mut Writer) {
        w.array(5).bytes(&self.genesis.0).bytes(&self.lock.0).uint(self.paid);
        match &self.receipt {
            Some(receipt) => w.bytes(&receipt.0),
            None => w.null(),
        };
        match &self.evidence {
            Some(evidence) => w.array(2).bytes(evidence.accept.bytes()).bytes(evidence.receipt.bytes()),
            None => w.null(),
        };
    }

    fn read(r: &mut Reader<'_>) -> Result<Release, EventError> {
        r.array(5)?;
        let genesis = Digest(r.byte_array()?);
        let lock = Digest(r.byte_array()?);
        let paid = r.uint()?;
        let receipt = r.optional(|r| r.byte_array().map(Digest))?;
        let evidence = r.optional(|r| {
            r.array(2)?;
            let accept = Signed::<ComputeAccept>::decode(r.bytes()?)?;
            let receipt = Signed::<Receipt>::decode(r.bytes()?)?;
            Ok(Box::new(ClaimEvidence { accept, receipt }))
        })?;
        if let Some(evidence) = &evidence
            && receipt != Some(evidence.receipt.hash())
        {
            return Err(EventError::Malformed("a claim names the receipt of its evidence".into()));
        }
        Ok(Release { genesis, lock, paid, receipt, evidence })
    }
}

impl ClaimEvidence {
    /// Checks both signatures (the ledger then checks whose they are and what they name).
    pub fn verify_signatures(&self) -> Result<(), EventError> {
        self.accept.verify_signature()?;
        self.receipt.verify_signature()
    }
}
