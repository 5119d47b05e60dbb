//! What the ledger writer is asked to do and what it answers: the commands on its queue, the
//! records stored with them, and the awaitable answer. Shared by the store's handle
//! (`writer.rs`) and the writer thread (`writer_thread.rs`).

use std::sync::Arc;

use super::contracts::{ContractRow, ProtocolEvent};
use super::prune::{PruneRule, Pruned};
use super::{StoreError, SubmitError};
use crate::crypto::{Digest, Keypair, PublicKey};
use crate::ledger::EquivocationProof;
use crate::protocol::{ClaimEvidence, Event, JobId, PaymentReference, Validity, Verified};

/// How an event is being admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A new event arriving now (from a peer, a file, the API): it must be unexpired, not from
    /// the future, and its nonce unseen.
    Fresh {
        /// The receiver's clock, ms since the epoch.
        now_ms: u64,
    },
    /// An old entry of a chain being caught up on (sync, restore from backup): only the
    /// signature and the ledger rules apply; replays are still caught by the chain.
    Historical,
}

/// A ledger entry for the writer to complete (chain position) and sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Draft {
    /// Mint `amount` to `to` (the signer must be the mint authority).
    Mint {
        /// The credited account.
        to: PublicKey,
        /// Tokens created.
        amount: u64,
    },
    /// Pay `amount` to `to`.
    Transfer {
        /// The payee.
        to: PublicKey,
        /// Tokens paid.
        amount: u64,
        /// What it pays for.
        reference: Option<PaymentReference>,
    },
    /// Set `amount` aside for the job `job` with the provider `to`.
    Lock {
        /// The provider.
        to: PublicKey,
        /// Tokens locked (the offer).
        amount: u64,
        /// The job.
        job: JobId,
    },
    /// End the lock `lock`, paying `paid` to its provider.
    Release {
        /// The lock's hash.
        lock: Digest,
        /// Tokens paid to the provider.
        paid: u64,
        /// The receipt paid for.
        receipt: Option<Digest>,
        /// A claim's evidence (boxed: drafts are small otherwise).
        evidence: Option<Box<ClaimEvidence>>,
    },
}

/// An event that is now durably in the log and applied to the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The event.
    pub event: Event,
    /// Its position in this node's log.
    pub log_position: i64,
    /// The account it credits (a release: the lock's provider).
    pub to: PublicKey,
    /// What it moves or creates (a release: what it pays the provider).
    pub amount: u64,
}

/// The answer to a command, available once its batch is committed: [`wait`](Pending::wait)
/// from a thread, [`done`](Pending::done) from async code.
#[must_use = "the command's outcome is only known by waiting for it"]
pub struct Pending<T> {
    pub(super) reply: tokio::sync::oneshot::Receiver<Result<T, SubmitError>>,
}

impl<T> Pending<T> {
    /// Blocks until the batch holding the command is committed (or refused). Not for async
    /// code (it would stall a runtime thread): use [`done`](Pending::done) there.
    pub fn wait(self) -> Result<T, SubmitError> {
        self.reply.blocking_recv().unwrap_or(Err(SubmitError::Store(StoreError::Closed)))
    }

    /// Resolves when the batch holding the command is committed (or refused).
    pub async fn done(self) -> Result<T, SubmitError> {
        self.reply.await.unwrap_or(Err(SubmitError::Store(StoreError::Closed)))
    }
}

pub(super) type Reply<T> = tokio::sync::oneshot::Sender<Result<T, SubmitError>>;

pub(super) enum Command {
    Submit {
        /// Boxed, like the proof: events are large, and the queue holds thousands of commands.
        event: Box<Verified>,
        admission: Admission,
        /// Stored in the same transaction only if the event is accepted.
        then: Box<Records>,
        /// How long an entry ahead of its chain may wait in the writer for its predecessors.
        wait: Option<std::time::Duration>,
        reply: Reply<Accepted>,
    },
    Author {
        signer: Arc<Keypair>,
        draft: Draft,
        validity: Validity,
        /// What to store in the same transaction once the entry is admitted, given it.
        then: Option<AuthorRecords>,
        reply: Reply<Accepted>,
    },
    Proof {
        proof: Box<EquivocationProof>,
        reply: Reply<bool>,
    },
    Records {
        records: Box<Records>,
        reply: Reply<()>,
    },
    Prune {
        rule: PruneRule,
        reply: Reply<Pruned>,
    },
}

/// What an authored entry is stored with, made once the entry is signed (its hash known).
pub type AuthorRecords = Box<dyn FnOnce(&Event) -> Records + Send>;

/// Protocol events and contract rows that go with a ledger entry (see
/// `LedgerStore::submit_with`).
#[derive(Clone, Debug, Default)]
pub struct Records {
    /// Protocol events for the log.
    pub events: Vec<ProtocolEvent>,
    /// Contract rows to insert or update.
    pub rows: Vec<ContractRow>,
    /// Verdicts this node owes an attestation for (canonical `OUTCOME_ATTESTATION` bodies),
    /// kept until they are signed in a set.
    pub owe: Vec<Vec<u8>>,
    /// Owed attestations (their ids) that an event of `events` now signs: deleted.
    pub attested: Vec<i64>,
}

impl Records {
    /// Only contract rows.
    pub fn rows(rows: Vec<ContractRow>) -> Records {
        Records { rows, ..Records::default() }
    }
}
