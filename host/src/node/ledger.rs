//! The node's ledger: authoring entries (through the API), gossiping them on
//! [`LEDGER_TOPIC`], checking and applying entries others gossip, and catching up on a chain
//! when an entry arrives before the ones it follows.
//!
//! Entries are gossiped in batches: an entry stored here waits [`GOSSIP_WAIT`] in the outbox
//! for others, and the gossiper publishes what waits as one message of up to
//! [`MAX_ENTRIES_PER_BATCH`] entries (one message, one dispatch and one lookup per receiver
//! for every payment of ~50 ms). Single entries on [`LEDGER_TOPIC_V1`] are still accepted.
//!
//! Every gossiped entry is decoded, its signature checked, and submitted as a fresh event:
//! the store applies the ledger rules (chain order, balance, mint authority) and keeps it.
//! When the rules say "out of order", the node asks the peer that forwarded it for the
//! account's entries from the expected sequence on (`GetChain`), applies them as history
//! (signature and rules still checked), and tries the gossiped entry again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};

use super::{NodeError, Shared, now_ms};
use crate::crypto::{Digest, PeerId, PublicKey};
use crate::ledger::LedgerError;
use crate::net::rpc::MAX_CHAIN_ENTRIES;
use crate::net::{Refusal, RpcRequest, RpcResponse};
use crate::protocol::{
    Event, EventError, MAX_ENTRIES_PER_BATCH, PaymentReference, Validity, Verified, decode_entry_batch,
    encode_entry_batch,
};
use crate::store::{Accepted, Admission, Draft, HistoryEntry, LedgerStore, Records, StoreError, SubmitError};

/// Gossip topic of signed ledger entries, in batches ([`encode_entry_batch`]).
pub const LEDGER_TOPIC: &str = "cue/ledger/2";
/// The topic of one signed ledger entry per message, as nodes before batches gossip them:
/// still subscribed to and accepted, no longer published on.
pub const LEDGER_TOPIC_V1: &str = "cue/ledger/1";
/// How long an entry in the outbox waits for others to be gossiped with.
const GOSSIP_WAIT: Duration = Duration::from_millis(50);
/// Entries waiting in the outbox at most; one beyond is published at once, on its own.
const MAX_OUTBOX: usize = 4_096;
/// Bytes of entries in one batch at most (gossip messages are limited to 128 KiB).
const MAX_BATCH_BYTES: usize = 120 * 1024;
/// How long an entry this node authors stays acceptable to others.
const ENTRY_LIFETIME_MS: u64 = 3_600_000;
/// Catch-up rounds for one gossiped entry (each brings up to `MAX_CHAIN_ENTRIES`).
const MAX_CATCH_UP_ROUNDS: u32 = 16;
/// How long an imported entry that is ahead of its chain waits for the entries before it.
const REORDER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A ledger entry as the API and `cue wallet --json` show it.
#[derive(Clone, Debug, Serialize)]
pub struct EntryView {
    /// The event's hash.
    pub hash: String,
    /// `cue/token-mint` or `cue/token-transfer`.
    pub kind: String,
    /// The signer (payer or mint authority).
    pub from: String,
    /// Position in the signer's chain.
    pub seq: u64,
    /// The credited account.
    pub to: String,
    /// Tokens moved or created.
    pub amount: u64,
    /// Position in this node's log.
    pub log_position: i64,
    /// Signing time, ms since the epoch.
    pub timestamp_ms: u64,
}

impl EntryView {
    fn of(accepted: &Accepted) -> EntryView {
        let event = &accepted.event;
        let entry = event.entry();
        EntryView {
            hash: event.hash().to_string(),
            kind: event.header().kind.tag().to_owned(),
            from: event.signer().peer_id().to_string(),
            seq: entry.link.seq,
            to: entry.to.peer_id().to_string(),
            amount: entry.amount,
            log_position: accepted.log_position,
            timestamp_ms: event.header().timestamp_ms,
        }
    }

    /// The view of a history row.
    pub fn of_history(e: &HistoryEntry) -> EntryView {
        EntryView {
            hash: e.hash.to_string(),
            kind: e.kind.clone(),
            from: e.signer.peer_id().to_string(),
            seq: e.seq,
            to: e.to.peer_id().to_string(),
            amount: e.amount,
            log_position: e.log_position,
            timestamp_ms: e.timestamp_ms,
        }
    }
}

/// What the node's wallet operations need: the store, or a clear error.
pub(super) fn store(shared: &Shared) -> Result<&Arc<LedgerStore>, NodeError> {
    shared.ledger.as_ref().ok_or_else(|| {
        NodeError::Invalid("this node has no ledger: start it with --genesis FILE (or CUE_GENESIS)".into())
    })
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| NodeError::Store(format!("ledger task: {e}")))
}

fn refused(e: SubmitError) -> NodeError {
    match e {
        SubmitError::Event(_) | SubmitError::Ledger(_) => NodeError::Invalid(e.to_string()),
        other => NodeError::Store(other.to_string()),
    }
}

/// Queues commands on the store's writer without stalling the runtime: directly while the
/// queue has room, else from a blocking thread that waits for room (back-pressure).
pub(super) async fn queue<T: Send + 'static>(
    store: &Arc<LedgerStore>,
    commands: impl FnOnce(&LedgerStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if store.has_room() {
        return commands(store);
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || commands(&store)).await.map_err(|_| StoreError::Closed)?
}

/// Signs a mint or transfer with the node's key, stores it, and gossips it.
pub(super) async fn author(shared: &Shared, draft: Draft) -> Result<EntryView, NodeError> {
    let accepted = author_quietly(shared, draft).await?;
    gossip(shared, accepted.event.bytes().to_vec()).await;
    Ok(EntryView::of(&accepted))
}

/// Signs a mint or transfer with the node's key and stores it; the caller gossips it (a
/// payment goes to its payee directly first).
pub(super) async fn author_quietly(shared: &Shared, draft: Draft) -> Result<Accepted, NodeError> {
    let store = store(shared)?.clone();
    let keypair = shared.keypair.clone();
    let validity = Validity::starting(now_ms(), ENTRY_LIFETIME_MS);
    queue(&store, move |store| store.author(keypair, draft, validity))
        .await
        .map_err(|e| NodeError::Store(e.to_string()))?
        .done()
        .await
        .map_err(refused)
}

/// [`author_quietly`], storing what `then` makes of the signed entry in the same commit (a
/// payment with the contract it settles).
pub(super) async fn author_with(
    shared: &Shared,
    draft: Draft,
    then: impl FnOnce(&Event) -> Records + Send + 'static,
) -> Result<Accepted, NodeError> {
    let store = store(shared)?.clone();
    let keypair = shared.keypair.clone();
    let validity = Validity::starting(now_ms(), ENTRY_LIFETIME_MS);
    queue(&store, move |store| store.author_with(keypair, draft, validity, then))
        .await
        .map_err(|e| NodeError::Store(e.to_string()))?
        .done()
        .await
        .map_err(refused)
}

/// Ledger entries stored here and waiting to be gossiped (at most [`MAX_OUTBOX`]).
#[derive(Default)]
pub(super) struct Outbox {
    entries: Mutex<VecDeque<Vec<u8>>>,
    /// Wakes the gossiper ([`run_gossiper`]).
    ready: Notify,
}

impl Outbox {
    /// Takes the oldest entries that fit one batch; empty when none waits.
    fn take_batch(&self) -> Vec<Vec<u8>> {
        let mut entries = self.entries.lock().expect("outbox lock");
        let mut batch = Vec::new();
        let mut size = 0;
        while let Some(next) = entries.front() {
            if batch.len() == MAX_ENTRIES_PER_BATCH
                || (!batch.is_empty() && size + next.len() > MAX_BATCH_BYTES)
            {
                break;
            }
            size += next.len();
            batch.extend(entries.pop_front());
        }
        batch
    }
}

/// Gossips a stored ledger entry on [`LEDGER_TOPIC`]: with the others stored within
/// [`GOSSIP_WAIT`], or at once when the outbox is full.
pub(super) async fn gossip(shared: &Shared, bytes: Vec<u8>) {
    let overflow = {
        let mut entries = shared.outbox.entries.lock().expect("outbox lock");
        if entries.len() < MAX_OUTBOX {
            entries.push_back(bytes);
            None
        } else {
            Some(bytes)
        }
    };
    match overflow {
        None => shared.outbox.ready.notify_one(),
        Some(bytes) => publish(shared, vec![bytes]).await,
    }
}

async fn publish(shared: &Shared, batch: Vec<Vec<u8>>) {
    let message = encode_entry_batch(batch.iter().map(Vec::as_slice));
    if let Err(e) = shared.client.publish(LEDGER_TOPIC, message).await {
        tracing::debug!("ledger gossip not sent: {e}");
    }
}

/// Publishes one batch of what waits in the outbox; answers whether there was one.
async fn publish_batch(shared: &Shared) -> bool {
    let batch = shared.outbox.take_batch();
    let some = !batch.is_empty();
    if some {
        publish(shared, batch).await;
    }
    some
}

/// Publishes what waits in the outbox, in batches.
async fn flush(shared: &Shared) {
    while publish_batch(shared).await {}
}

/// How long a stopping node keeps its network up after publishing its outbox, for the
/// messages to leave.
const FLUSH_LINGER: Duration = Duration::from_millis(100);

/// Before the node's tasks stop: publishes what waits in the outbox (at most 2 s), then gives
/// the messages [`FLUSH_LINGER`] to leave. Nothing waiting, no delay.
pub(super) async fn flush_before_stop(shared: &Shared) {
    if shared.outbox.entries.lock().expect("outbox lock").is_empty() {
        return;
    }
    if tokio::time::timeout(Duration::from_secs(2), flush(shared)).await.is_err() {
        tracing::warn!("ledger entries not gossiped before stopping: peers catch up on them later");
    }
    tokio::time::sleep(FLUSH_LINGER).await;
}

/// Until shutdown: woken by an entry put in the outbox, waits [`GOSSIP_WAIT`] for more, then
/// gossips what waits; at shutdown, tries to gossip what waits by then (what a stopping node
/// had waiting was published before, see [`flush_before_stop`]).
pub(super) async fn run_gossiper(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let shared = &shared;
    super::drain_in_batches(shutdown, &shared.outbox.ready, GOSSIP_WAIT, || publish_batch(shared)).await
}

/// The draft of a transfer.
pub(super) fn transfer_draft(to: PeerId, amount: u64, reference: Option<PaymentReference>) -> Draft {
    Draft::Transfer { to: to.public_key(), amount, reference }
}

/// The draft of a mint.
pub(super) fn mint_draft(to: PeerId, amount: u64) -> Draft {
    Draft::Mint { to: to.public_key(), amount }
}

/// An account's balance and whether it is flagged for equivocation.
pub(super) async fn balance(shared: &Shared, account: PublicKey) -> Result<(u64, bool), NodeError> {
    let store = store(shared)?.clone();
    blocking(move || {
        let reader = store.reader()?;
        Ok::<_, crate::store::StoreError>((reader.balance(&account)?, reader.is_flagged(&account)?))
    })
    .await?
    .map_err(|e| NodeError::Store(e.to_string()))
}

/// An account's latest entries, newest first.
pub(super) async fn history(
    shared: &Shared,
    account: PublicKey,
    limit: u32,
) -> Result<Vec<EntryView>, NodeError> {
    let store = store(shared)?.clone();
    let entries = blocking(move || store.reader()?.history(&account, limit))
        .await?
        .map_err(|e| NodeError::Store(e.to_string()))?;
    Ok(entries.iter().map(EntryView::of_history).collect())
}

/// Verifies and applies a signed entry from outside (a file, the API, a payment), and gossips
/// it.
pub(super) async fn import(
    shared: &Shared,
    bytes: Vec<u8>,
    historical: bool,
) -> Result<EntryView, NodeError> {
    match import_quietly(shared, bytes.clone(), historical).await? {
        Imported::New(accepted) => {
            gossip(shared, bytes).await;
            Ok(EntryView::of(&accepted))
        }
        Imported::Known(why) => Err(NodeError::Invalid(why)),
    }
}

/// What importing an entry did.
pub(super) enum Imported {
    /// It is stored now (boxed: an accepted event is large).
    New(Box<Accepted>),
    /// It was stored before (the words say how it was recognised: chain position or nonce).
    Known(String),
}

/// Verifies and applies a signed entry. A fresh entry that arrived a little ahead of its
/// payer's earlier ones (concurrent payments travel on separate streams) waits up to
/// [`REORDER_WAIT`] for them to be stored, then is applied or refused as out of order.
pub(super) async fn import_quietly(
    shared: &Shared,
    bytes: Vec<u8>,
    historical: bool,
) -> Result<Imported, NodeError> {
    import_with(shared, bytes, historical, Records::default()).await
}

/// [`import_quietly`], storing `then` in the same commit if (and only if) the entry is new and
/// accepted.
pub(super) async fn import_with(
    shared: &Shared,
    bytes: Vec<u8>,
    historical: bool,
    then: Records,
) -> Result<Imported, NodeError> {
    let event =
        Event::decode(&bytes).and_then(Event::verify).map_err(|e| NodeError::Invalid(e.to_string()))?;
    let store = store(shared)?.clone();
    let admission = if historical { Admission::Historical } else { Admission::Fresh { now_ms: now_ms() } };
    let submitted = queue(&store, move |store| store.submit_in_order(event, admission, then, REORDER_WAIT))
        .await
        .map_err(|e| NodeError::Store(e.to_string()))?
        .done()
        .await;
    match submitted {
        Ok(accepted) => Ok(Imported::New(Box::new(accepted))),
        Err(
            e @ (SubmitError::Ledger(LedgerError::Duplicate { .. }) | SubmitError::Event(EventError::Replay)),
        ) => Ok(Imported::Known(e.to_string())),
        Err(e) => Err(refused(e)),
    }
}

/// Submits a verified event to the store and waits until it is durable or refused.
async fn submit(
    store: Arc<LedgerStore>,
    event: Verified,
    admission: Admission,
) -> Result<Accepted, SubmitError> {
    submit_with(store, event, admission, Records::default()).await
}

async fn submit_with(
    store: Arc<LedgerStore>,
    event: Verified,
    admission: Admission,
    then: Records,
) -> Result<Accepted, SubmitError> {
    queue(&store, move |store| store.submit_with(event, admission, then)).await?.done().await
}

/// A gossiped batch of entries: those not in the log yet (found in one read) are checked and
/// queued together, so the writer commits them in one transaction, in their order; one that
/// comes out of order (or cannot be queued) goes the single-entry way of [`on_gossip`], which
/// catches up on its chain. A bad entry is refused and counted; the others still count.
pub(super) async fn on_gossip_batch(shared: Arc<Shared>, from: PeerId, bytes: Vec<u8>) {
    let Some(store) = shared.ledger.clone() else { return };
    let entries = match decode_entry_batch(&bytes) {
        Ok(entries) => entries,
        Err(e) => {
            shared.refusals.count(Refusal::LedgerEntry);
            tracing::info!(%from, "refused a gossiped batch of ledger entries: {e}");
            return;
        }
    };
    // Without a reader every entry is tried: the writer knows the ones it has.
    let fresh: Vec<&[u8]> = match store.reader() {
        Ok(reader) => {
            entries.into_iter().filter(|e| !reader.has_event(&Digest::of(e)).unwrap_or(false)).collect()
        }
        Err(_) => entries,
    };
    let mut queued = Vec::new();
    for entry in fresh {
        match Event::decode(entry).and_then(Event::verify) {
            Ok(event) => {
                let admission = Admission::Fresh { now_ms: now_ms() };
                let pending =
                    queue(&store, move |store| store.submit_with(event, admission, Records::default())).await;
                queued.push((entry.to_vec(), pending));
            }
            Err(e) => {
                shared.refusals.count(Refusal::LedgerEntry);
                tracing::info!(%from, "refused a gossiped ledger entry: {e}");
            }
        }
    }
    for (entry, pending) in queued {
        let submitted = match pending {
            Ok(pending) => pending.done().await,
            Err(e) => Err(SubmitError::Store(e)),
        };
        match submitted {
            Ok(accepted) => tracing::debug!(hash = %accepted.event.hash(), "applied a gossiped ledger entry"),
            Err(
                SubmitError::Ledger(LedgerError::Duplicate { .. }) | SubmitError::Event(EventError::Replay),
            ) => {}
            Err(SubmitError::Ledger(LedgerError::OutOfOrder { .. }) | SubmitError::Store(_)) => {
                on_gossip(shared.clone(), from, entry).await
            }
            Err(e) => {
                shared.refusals.count(Refusal::LedgerEntry);
                tracing::info!(%from, "refused a gossiped ledger entry: {e}");
            }
        }
    }
}

/// A gossiped entry: check it, apply it, catch up on its chain if it came early.
pub(super) async fn on_gossip(shared: Arc<Shared>, from: PeerId, bytes: Vec<u8>) {
    let Some(store) = shared.ledger.clone() else { return };
    // A payment usually reaches its payee directly before its gossip does: an entry already
    // in the log costs a lookup, not a signature check.
    if store.reader().and_then(|r| r.has_event(&Digest::of(&bytes))).unwrap_or(false) {
        return;
    }
    for _ in 0..=MAX_CATCH_UP_ROUNDS {
        let event = match Event::decode(&bytes).and_then(Event::verify) {
            Ok(event) => event,
            Err(e) => {
                shared.refusals.count(Refusal::LedgerEntry);
                tracing::info!(%from, "refused a gossiped ledger entry: {e}");
                return;
            }
        };
        let signer = event.event().signer();
        match submit(store.clone(), event, Admission::Fresh { now_ms: now_ms() }).await {
            Ok(accepted) => {
                tracing::debug!(hash = %accepted.event.hash(), "applied a gossiped ledger entry");
                return;
            }
            Err(SubmitError::Ledger(LedgerError::OutOfOrder { expected, .. })) => {
                if !catch_up(&shared, from, signer, expected).await {
                    return;
                }
            }
            Err(SubmitError::Ledger(LedgerError::Duplicate { .. })) => return,
            Err(e) => {
                shared.refusals.count(Refusal::LedgerEntry);
                tracing::info!(%from, "refused a gossiped ledger entry: {e}");
                return;
            }
        }
    }
}

/// Asks `peer` for `account`'s entries from `from_seq` on and applies them as history;
/// answers whether anything was applied.
async fn catch_up(shared: &Shared, peer: PeerId, account: PublicKey, from_seq: u64) -> bool {
    let request = RpcRequest::GetChain { account: account.as_bytes().to_vec(), from_seq };
    let entries = match shared.client.request(peer, request).await {
        Ok(RpcResponse::Chain(entries)) => entries,
        other => {
            tracing::info!(%peer, "cannot catch up on {}: {other:?}", account.peer_id());
            return false;
        }
    };
    let Some(store) = shared.ledger.clone() else { return false };
    let mut applied = 0usize;
    for bytes in entries.into_iter().take(MAX_CHAIN_ENTRIES as usize) {
        let event = match Event::decode(&bytes).and_then(Event::verify) {
            Ok(event) if event.event().signer() == account => event,
            Ok(_) => {
                tracing::warn!(%peer, "answered entries of another account");
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, "sent a bad ledger entry: {e}");
                break;
            }
        };
        match submit(store.clone(), event, Admission::Historical).await {
            Ok(_) => applied += 1,
            Err(SubmitError::Ledger(LedgerError::Duplicate { .. })) => {}
            Err(e) => {
                tracing::info!(%peer, "catch-up entry refused: {e}");
                break;
            }
        }
    }
    applied > 0
}

/// Answers a `GetChain` request from the local log.
pub(super) fn chain(shared: &Shared, account: &[u8], from_seq: u64) -> RpcResponse {
    use crate::net::RefusalReason;
    let Some(store) = shared.ledger.as_ref() else {
        return RpcResponse::refused(RefusalReason::NotFound, "this node keeps no ledger");
    };
    let Ok(account) =
        <[u8; 32]>::try_from(account).map_err(drop).and_then(|k| PublicKey::from_bytes(k).map_err(drop))
    else {
        return RpcResponse::refused(RefusalReason::BadRequest, "not an ed25519 public key");
    };
    match store.reader().and_then(|r| r.chain_from(&account, from_seq, MAX_CHAIN_ENTRIES)) {
        Ok(entries) => RpcResponse::Chain(entries.into_iter().map(serde_bytes::ByteBuf::from).collect()),
        Err(e) => {
            tracing::error!("ledger read: {e}");
            RpcResponse::refused(RefusalReason::Busy, "the ledger could not be read")
        }
    }
}

/// The hash form of a payment reference.
pub(super) fn parse_reference(text: &str) -> Result<PaymentReference, NodeError> {
    let invalid = |m: &str| NodeError::Invalid(format!("reference {text:?}: {m}"));
    let (kind, hash) =
        text.split_once(':').ok_or_else(|| invalid("expected contract:<hash> or receipt:<hash>"))?;
    let hash = Digest::from_hex(hash).ok_or_else(|| invalid("the hash must be 64 hex characters"))?;
    match kind {
        "contract" => Ok(PaymentReference::Contract(hash)),
        "receipt" => Ok(PaymentReference::Receipt(hash)),
        _ => Err(invalid("the kind must be contract or receipt")),
    }
}
