//! The journal: everything a node records about its contracts, its verdicts and its ledger
//! goes through here, as [`Records`] committed together (one transaction, one disk sync) and
//! awaited until durable. Every role writes through it, so no role reaches into another's file
//! to store, and the writer's queue is never waited on from a runtime thread. Its pruner
//! ([`run_pruner`]) keeps the log within its retention and cap (`store::PruneRule`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{NodeError, wait_for};
use crate::clock::now_ms;
use crate::crypto::{Digest, Keypair, PublicKey};
use crate::ledger::LedgerError;
use crate::protocol::{Event, EventError, Validity, Verified};
use crate::store::{
    Accepted, Admission, ContractRow, Draft, LedgerStore, Pending, PooledReader, ProtocolEvent, PruneRule,
    Records, StoreError, SubmitError,
};

/// How long an entry this node authors stays acceptable to others.
const ENTRY_LIFETIME_MS: u64 = 3_600_000;
/// How long an imported entry that is ahead of its chain waits for the entries before it.
const REORDER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How often the log is pruned (besides at start).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The node's event log and ledger, when it has a genesis; cheap to clone.
#[derive(Clone)]
pub(super) struct Journal {
    store: Option<Arc<LedgerStore>>,
}

/// What importing an entry did.
pub(super) enum Imported {
    /// It is stored now (boxed: an accepted event is large).
    New(Box<Accepted>),
    /// It was stored before (the words say how it was recognised: chain position or nonce).
    Known(String),
}

impl Journal {
    /// The journal over `store` (`None`: a node without a ledger records nothing).
    pub(super) fn new(store: Option<Arc<LedgerStore>>) -> Journal {
        Journal { store }
    }

    /// The ledger store, or [`NodeError::NoLedger`].
    pub(super) fn store(&self) -> Result<&Arc<LedgerStore>, NodeError> {
        self.store.as_ref().ok_or(NodeError::NoLedger)
    }

    /// Whether the node keeps a ledger.
    pub(super) fn is_kept(&self) -> bool {
        self.store.is_some()
    }

    /// The network's genesis id, when the node keeps a ledger.
    pub(super) fn genesis_id(&self) -> Option<Digest> {
        self.store.as_ref().map(|store| store.genesis().id())
    }

    /// Whether the ledger flagged `account` for equivocation (answered from memory).
    pub(super) fn is_flagged(&self, account: &PublicKey) -> bool {
        self.store.as_ref().is_some_and(|store| store.is_flagged(account))
    }

    /// A reader of the log, on the caller's thread (a pooled connection: cheap, never blocks
    /// on the writer).
    pub(super) fn reader(&self) -> Result<PooledReader<'_>, NodeError> {
        Ok(self.store()?.reader()?)
    }

    /// Runs `read` on a reader off the runtime's threads (for reads that scan).
    pub(super) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&PooledReader<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let store = self.store()?.clone();
        let answer = tokio::task::spawn_blocking(move || read(&store.reader()?))
            .await
            .map_err(|e| NodeError::task("ledger read", e))?;
        Ok(answer?)
    }

    /// Stores `records` in one transaction and waits until they are durable. A failure is
    /// logged here too: most callers' records are their own bookkeeping, and a node whose disk
    /// fails keeps serving what it can.
    pub(super) async fn commit(&self, records: Records) -> Result<(), NodeError> {
        let store = self.store()?;
        let stored = match queue(store, move |store| store.store(records)).await {
            Ok(pending) => pending.done().await.map_err(NodeError::from),
            Err(e) => Err(NodeError::Store(e)),
        };
        if let Err(e) = &stored {
            tracing::error!("a contract event or row could not be stored: {e}");
        }
        stored
    }

    /// Stores one protocol event (see [`Journal::commit`]); answers whether it is stored.
    pub(super) async fn log(&self, event: ProtocolEvent) -> bool {
        self.commit(Records { events: vec![event], ..Records::default() }).await.is_ok()
    }

    /// Stores a contract's new row (see [`Journal::commit`]); answers whether it is stored.
    pub(super) async fn update(&self, row: ContractRow) -> bool {
        self.commit(Records::rows(vec![row])).await.is_ok()
    }

    /// Signs a mint or transfer with `keypair` at its next chain position and stores it with
    /// what `then` makes of the signed entry, in one commit (a payment with the contract it
    /// settles); nothing of `then` is stored if the ledger refuses the entry.
    pub(super) async fn author(
        &self,
        keypair: Arc<Keypair>,
        draft: Draft,
        then: impl FnOnce(&Event) -> Records + Send + 'static,
    ) -> Result<Accepted, NodeError> {
        let validity = Validity::starting(now_ms(), ENTRY_LIFETIME_MS);
        let pending =
            queue(self.store()?, move |store| store.author_with(keypair, draft, validity, then)).await?;
        Ok(pending.done().await?)
    }

    /// Verifies and applies a signed entry from outside (a file, the API, a payment) and
    /// stores `then` with it in the same commit if (and only if) it is new and accepted. A
    /// fresh entry that arrived a little ahead of its payer's earlier ones (concurrent payments
    /// travel on separate streams) waits up to [`REORDER_WAIT`] for them.
    pub(super) async fn import(
        &self,
        bytes: &[u8],
        historical: bool,
        then: Records,
    ) -> Result<Imported, NodeError> {
        let event =
            Event::decode(bytes).and_then(Event::verify).map_err(|e| NodeError::Invalid(e.to_string()))?;
        let admission =
            if historical { Admission::Historical } else { Admission::Fresh { now_ms: now_ms() } };
        let pending =
            queue(self.store()?, move |store| store.submit_in_order(event, admission, then, REORDER_WAIT))
                .await?;
        match pending.done().await {
            Ok(accepted) => Ok(Imported::New(Box::new(accepted))),
            Err(
                e @ (SubmitError::Ledger(
                    LedgerError::Duplicate { .. } | LedgerError::AlreadyReleased { same: true, .. },
                )
                | SubmitError::Event(EventError::Replay)),
            ) => Ok(Imported::Known(e.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Queues a verified entry (for gossip, which queues a batch before waiting on any of it);
    /// the answer resolves once it is durable or refused.
    pub(super) async fn queue_entry(
        &self,
        event: Verified,
        admission: Admission,
    ) -> Result<Pending<Accepted>, SubmitError> {
        let store = self.store.as_ref().ok_or(SubmitError::Store(StoreError::Closed))?;
        Ok(queue(store, move |store| store.submit(event, admission)).await?)
    }

    /// Submits a verified entry and waits until it is durable or refused.
    pub(super) async fn submit(
        &self,
        event: Verified,
        admission: Admission,
    ) -> Result<Accepted, SubmitError> {
        self.queue_entry(event, admission).await?.done().await
    }
}

/// Until shutdown: prunes the log (see `store::PruneRule`) at start and every
/// [`PRUNE_EVERY`], a command at a time until nothing more goes. Without a ledger it ends at
/// once.
pub(super) async fn run_pruner(journal: Journal, shutdown: watch::Receiver<bool>) {
    let Ok(store) = journal.store().cloned() else { return };
    loop {
        prune(&store).await;
        tokio::select! {
            () = wait_for(shutdown.clone()) => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// Prunes by the default rule, one command (about `store::PRUNE_BATCH` events) at a time,
/// while each deletes something and says more may be left.
async fn prune(store: &Arc<LedgerStore>) {
    let (mut events, mut contracts) = (0, 0);
    loop {
        let rule = PruneRule::at(now_ms());
        let pruned = match queue(store, move |store| store.prune(rule)).await {
            Ok(pending) => pending.done().await,
            Err(e) => Err(e.into()),
        };
        match pruned {
            Ok(pruned) => {
                (events, contracts) = (events + pruned.events, contracts + pruned.contracts);
                if !pruned.more || pruned.events == 0 {
                    break;
                }
            }
            Err(e) => {
                tracing::error!("cannot prune the log: {e}");
                break;
            }
        }
    }
    if events > 0 {
        tracing::info!(events, contracts, "pruned the log");
    }
}

/// Queues commands on the store's writer without stalling the runtime: directly while the
/// queue has room, else from a blocking thread that waits for room (back-pressure).
async fn queue<T: Send + 'static>(
    store: &Arc<LedgerStore>,
    commands: impl FnOnce(&LedgerStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if store.has_room() {
        return commands(store);
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || commands(&store)).await.map_err(|_| StoreError::Closed)?
}
