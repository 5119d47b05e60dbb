//! Gossiped ledger entries (`cue/ledger/2`, in batches; one that comes out of order is taken
//! on its own, see [`on_gossip`]): every
//! entry is decoded, its signature checked, and submitted as a fresh event; the store applies
//! the ledger rules (chain order, balance, mint authority) and keeps it. When the rules say
//! "out of order", the node asks the peer that forwarded it for the account's entries from the
//! expected sequence on (`GetChain`), applies them as history (signature and rules still
//! checked), and tries the gossiped entry again. This file also answers `GetChain`.

use std::sync::Arc;

use super::super::Shared;
use crate::clock::now_ms;
use crate::crypto::{Digest, PeerId, PublicKey};
use crate::ledger::LedgerError;
use crate::net::rpc::MAX_CHAIN_ENTRIES;
use crate::net::{GossipVerdict, Refusal, RefusalReason, RpcRequest, RpcResponse};
use crate::protocol::{Event, EventError, decode_entry_batch};
use crate::store::{Accepted, Admission, Pending, SubmitError};

/// Catch-up rounds for one gossiped entry (each brings up to `MAX_CHAIN_ENTRIES`).
const MAX_CATCH_UP_ROUNDS: u32 = 16;

/// A gossiped batch of entries: those not in the log yet (found in one read) are checked and
/// queued together, so the writer commits them in one transaction, in their order; one that
/// comes out of order (or cannot be queued) goes the single-entry way of [`on_gossip`], which
/// catches up on its chain. A bad entry is refused and counted; the others still count.
/// The verdict: rejected when the batch or any entry in it is malformed or forged (its sender
/// relayed a forgery), ignored when the ledger rules refused an entry here (this node's view may
/// lag), accepted otherwise.
pub(in crate::node) async fn on_gossip_batch(
    shared: Arc<Shared>,
    from: PeerId,
    bytes: Vec<u8>,
) -> GossipVerdict {
    let journal = &shared.journal;
    if !journal.is_kept() {
        return GossipVerdict::Ignore;
    }
    let entries = match decode_entry_batch(&bytes) {
        Ok(entries) => entries,
        Err(e) => {
            shared.refusals.count(Refusal::LedgerEntry);
            tracing::info!(%from, "refused a gossiped batch of ledger entries: {e}");
            return GossipVerdict::Reject;
        }
    };
    // Without a reader every entry is tried: the writer knows the ones it has.
    let fresh: Vec<&[u8]> = match journal.reader() {
        Ok(reader) => {
            entries.into_iter().filter(|e| !reader.has_event(&Digest::of(e)).unwrap_or(false)).collect()
        }
        Err(_) => entries,
    };
    let mut verdict = GossipVerdict::Accept;
    let mut queued = Vec::new();
    for entry in fresh {
        match Event::decode(entry).and_then(Event::verify) {
            Ok(event) => {
                let admission = Admission::Fresh { now_ms: now_ms() };
                queued.push((entry.to_vec(), journal.queue_entry(event, admission).await));
            }
            Err(e) => {
                shared.refusals.count(Refusal::LedgerEntry);
                tracing::info!(%from, "refused a gossiped ledger entry: {e}");
                verdict = GossipVerdict::Reject;
            }
        }
    }
    worse(verdict, settle_queued(&shared, from, queued).await)
}

/// An entry of a batch as queued on the writer (or why it could not be).
type Queued = Result<Pending<Accepted>, SubmitError>;

/// Waits for the queued entries of a batch, in their order; one out of order (or that could
/// not be queued) goes the single-entry way. Answers the worst verdict among them.
async fn settle_queued(shared: &Arc<Shared>, from: PeerId, queued: Vec<(Vec<u8>, Queued)>) -> GossipVerdict {
    let mut verdict = GossipVerdict::Accept;
    for (entry, pending) in queued {
        let submitted = match pending {
            Ok(pending) => pending.done().await,
            Err(e) => Err(e),
        };
        let outcome = match submitted {
            Ok(accepted) => {
                tracing::debug!(hash = %accepted.event.hash(), "applied a gossiped ledger entry");
                GossipVerdict::Accept
            }
            Err(
                SubmitError::Ledger(LedgerError::Duplicate { .. }) | SubmitError::Event(EventError::Replay),
            ) => GossipVerdict::Accept,
            Err(SubmitError::Ledger(LedgerError::OutOfOrder { .. }) | SubmitError::Store(_)) => {
                on_gossip(shared.clone(), from, entry).await
            }
            Err(e) => {
                shared.refusals.count(Refusal::LedgerEntry);
                tracing::info!(%from, "refused a gossiped ledger entry: {e}");
                GossipVerdict::Ignore
            }
        };
        verdict = worse(verdict, outcome);
    }
    verdict
}

/// The verdict of a batch holding entries judged `a` and `b`.
fn worse(a: GossipVerdict, b: GossipVerdict) -> GossipVerdict {
    match (a, b) {
        (GossipVerdict::Reject, _) | (_, GossipVerdict::Reject) => GossipVerdict::Reject,
        (GossipVerdict::Ignore, _) | (_, GossipVerdict::Ignore) => GossipVerdict::Ignore,
        _ => GossipVerdict::Accept,
    }
}

/// A gossiped entry: check it, apply it, catch up on its chain if it came early. Rejected when
/// malformed or forged; ignored when the ledger rules refuse it here; accepted otherwise.
pub(in crate::node) async fn on_gossip(shared: Arc<Shared>, from: PeerId, bytes: Vec<u8>) -> GossipVerdict {
    let journal = &shared.journal;
    if !journal.is_kept() {
        return GossipVerdict::Ignore;
    }
    // A payment usually reaches its payee directly before its gossip does: an entry already
    // in the log costs a lookup, not a signature check.
    if journal.reader().is_ok_and(|r| r.has_event(&Digest::of(&bytes)).unwrap_or(false)) {
        return GossipVerdict::Accept;
    }
    for _ in 0..=MAX_CATCH_UP_ROUNDS {
        let event = match Event::decode(&bytes).and_then(Event::verify) {
            Ok(event) => event,
            Err(e) => {
                shared.refusals.count(Refusal::LedgerEntry);
                tracing::info!(%from, "refused a gossiped ledger entry: {e}");
                return GossipVerdict::Reject;
            }
        };
        let signer = event.event().signer();
        match journal.submit(event, Admission::Fresh { now_ms: now_ms() }).await {
            Ok(accepted) => {
                tracing::debug!(hash = %accepted.event.hash(), "applied a gossiped ledger entry");
                return GossipVerdict::Accept;
            }
            Err(SubmitError::Ledger(LedgerError::OutOfOrder { expected, .. })) => {
                if !catch_up(&shared, from, signer, expected).await {
                    return GossipVerdict::Ignore;
                }
            }
            Err(SubmitError::Ledger(LedgerError::Duplicate { .. })) => return GossipVerdict::Accept,
            Err(e) => {
                shared.refusals.count(Refusal::LedgerEntry);
                tracing::info!(%from, "refused a gossiped ledger entry: {e}");
                return GossipVerdict::Ignore;
            }
        }
    }
    GossipVerdict::Ignore
}

/// Asks `peer` for `account`'s entries from `from_seq` on and applies them as history;
/// answers whether anything was applied.
pub(in crate::node) async fn catch_up(
    shared: &Shared,
    peer: PeerId,
    account: PublicKey,
    from_seq: u64,
) -> bool {
    let request = RpcRequest::GetChain { account: account.as_bytes().to_vec(), from_seq };
    let entries = match shared.client.request(peer, request).await {
        Ok(RpcResponse::Chain(entries)) => entries,
        other => {
            tracing::info!(%peer, "cannot catch up on {}: {other:?}", account.peer_id());
            return false;
        }
    };
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
        match shared.journal.submit(event, Admission::Historical).await {
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
pub(in crate::node) fn chain(shared: &Shared, account: &[u8], from_seq: u64) -> RpcResponse {
    if !shared.journal.is_kept() {
        return RpcResponse::refused(RefusalReason::NotFound, "this node keeps no ledger");
    }
    let Ok(account) =
        <[u8; 32]>::try_from(account).map_err(drop).and_then(|k| PublicKey::from_bytes(k).map_err(drop))
    else {
        return RpcResponse::refused(RefusalReason::BadRequest, "not an ed25519 public key");
    };
    let entries =
        shared.journal.reader().and_then(|r| Ok(r.chain_from(&account, from_seq, MAX_CHAIN_ENTRIES)?));
    match entries {
        Ok(entries) => RpcResponse::Chain(entries.into_iter().map(serde_bytes::ByteBuf::from).collect()),
        Err(e) => {
            tracing::error!("ledger read: {e}");
            RpcResponse::refused(RefusalReason::Busy, "the ledger could not be read")
        }
    }
}
