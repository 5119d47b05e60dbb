//! This node's account: signing mints and transfers, importing entries from outside, and the
//! view of a ledger entry the API and `cue wallet` print. Every entry stored here is gossiped
//! through the outbox.

use serde::{Deserialize, Serialize};

use super::journal::Imported;
use super::{NodeError, Shared};
use crate::crypto::PeerId;
use crate::protocol::PaymentReference;
use crate::store::{Accepted, Draft, HistoryEntry, Records};

/// A ledger entry as the API and `cue wallet --json` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    /// The event's hash.
    pub hash: String,
    /// `cue/token-mint`, `cue/token-transfer`, `cue/token-lock` or `cue/token-release`.
    pub kind: String,
    /// The signer (payer or mint authority).
    pub from: String,
    /// Position in the signer's chain (`None`: a release, which is no chain entry).
    pub seq: Option<u64>,
    /// The credited account (a lock: its provider; a release: the provider paid).
    pub to: String,
    /// Tokens moved or created.
    pub amount: u64,
    /// Position in this node's log.
    pub log_position: i64,
    /// Signing time, ms since the epoch.
    pub timestamp_ms: u64,
}

impl EntryView {
    /// The view of an entry just stored.
    pub fn of(accepted: &Accepted) -> EntryView {
        let event = &accepted.event;
        EntryView {
            hash: event.hash().to_string(),
            kind: event.header().kind.tag().to_owned(),
            from: event.signer().peer_id().to_string(),
            seq: event.seq(),
            to: accepted.to.peer_id().to_string(),
            amount: accepted.amount,
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

/// The draft of a transfer.
pub(super) fn transfer(to: PeerId, amount: u64, reference: Option<PaymentReference>) -> Draft {
    Draft::Transfer { to: to.public_key(), amount, reference }
}

/// The draft of a mint.
pub(super) fn mint(to: PeerId, amount: u64) -> Draft {
    Draft::Mint { to: to.public_key(), amount }
}

/// Signs a mint or transfer with the node's key, stores it, and gossips it.
pub(super) async fn author(shared: &Shared, draft: Draft) -> Result<EntryView, NodeError> {
    let accepted = shared.journal.author(shared.keypair.clone(), draft, |_| Records::default()).await?;
    shared.outbox.gossip(accepted.event.bytes().to_vec()).await;
    Ok(EntryView::of(&accepted))
}

/// Verifies and applies a signed entry from outside (a file, the API), and gossips it; one
/// already stored is refused as such.
pub(super) async fn import(
    shared: &Shared,
    bytes: Vec<u8>,
    historical: bool,
) -> Result<EntryView, NodeError> {
    match shared.journal.import(&bytes, historical, Records::default()).await? {
        Imported::New(accepted) => {
            shared.outbox.gossip(bytes).await;
            Ok(EntryView::of(&accepted))
        }
        Imported::Known(why) => Err(NodeError::Invalid(why)),
    }
}

/// Own entries signed within this long before now are gossiped again by [`regossip_recent`].
const REGOSSIP_WINDOW_MS: u64 = 3_600_000;
/// Own entries gossiped again at most, newest first.
const REGOSSIP_LIMIT: u32 = 64;

/// Gossips again this node's own entries of the last hour (at most [`REGOSSIP_LIMIT`]): an entry
/// that never left — the node stopped within its outbox wait, or had no peer then — reaches the
/// network when the node (re)joins it. Receivers that have it drop it at the cost of a lookup.
/// The announcer calls it at start, when peers connect, and every 5 minutes.
pub(super) async fn regossip_recent(shared: &Shared) {
    let me = shared.keypair.public();
    let since = crate::clock::now_ms().saturating_sub(REGOSSIP_WINDOW_MS);
    let recent = shared
        .journal
        .read(move |reader| {
            let mine = reader
                .history(&me, REGOSSIP_LIMIT)?
                .into_iter()
                .filter(|e| e.signer == me && e.timestamp_ms >= since);
            mine.map(|e| reader.event_bytes(&e.hash))
                .filter_map(Result::transpose)
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .unwrap_or_default();
    for bytes in recent.into_iter().rev() {
        shared.outbox.gossip(bytes).await;
    }
}
