//! The consumer's refunder: a lock whose attempt is over without a payment — the node stopped
//! between locking and refunding, say — is given back. A lock older than [`STALE_AFTER`] whose
//! job has no live contract with its provider (none, or one that ended unpaid) is released
//! paying nothing; locks of contracts still accepted or delivered are left to their attempt.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::super::{Shared, wait_for};
use crate::clock::now_ms;
use crate::crypto::Digest;
use crate::store::{ContractState, Draft, Records, Role};

/// Age after which a lock without a live contract is given back: longer than any attempt
/// takes to reach its contract (a request lives 60 s).
const STALE_AFTER: Duration = Duration::from_secs(120);
/// How often open locks are looked at (and once at start).
const EVERY: Duration = Duration::from_secs(30);
/// Locks looked at per round.
const LIMIT: u32 = 256;

/// Until shutdown: gives back stale locks at start and every [`EVERY`].
pub(in crate::node) async fn run_refunder(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    if !shared.journal.is_kept() {
        return;
    }
    loop {
        refund_stale(&shared, now_ms()).await;
        tokio::select! {
            () = wait_for(shutdown.clone()) => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Releases, paying nothing, this node's open locks older than [`STALE_AFTER`] at `now` whose
/// job has no live contract with the lock's provider. Answers how many it gave back.
pub(in crate::node) async fn refund_stale(shared: &Shared, now: u64) -> usize {
    let me = shared.keypair.public();
    let stale = shared
        .journal
        .read(move |reader| {
            let mut stale = Vec::new();
            for (hash, lock, signed_ms) in reader.open_locks_of(&me, LIMIT)? {
                if now.saturating_sub(signed_ms) < STALE_AFTER.as_millis() as u64 {
                    break;
                }
                let live = reader.contracts_of_job(&lock.job)?.into_iter().any(|c| {
                    c.role == Role::Consumer
                        && c.peer == lock.payee
                        && matches!(c.state, ContractState::Accepted | ContractState::Delivered)
                });
                if !live {
                    stale.push(hash);
                }
            }
            Ok(stale)
        })
        .await
        .unwrap_or_default();
    let mut refunded = 0;
    for lock in stale {
        refunded += usize::from(refund(shared, lock).await);
    }
    refunded
}

async fn refund(shared: &Shared, lock: Digest) -> bool {
    let draft = Draft::Release { lock, paid: 0, receipt: None, evidence: None };
    match shared.journal.author(shared.keypair.clone(), draft, |_| Records::default()).await {
        Ok(released) => {
            tracing::info!(%lock, "gave back a stale lock");
            shared.outbox.gossip(released.event.bytes().to_vec()).await;
            true
        }
        Err(e) => {
            tracing::info!(%lock, "a stale lock was not given back: {e}");
            false
        }
    }
}
