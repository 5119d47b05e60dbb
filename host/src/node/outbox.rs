//! Ledger entries stored here and waiting to be gossiped on [`LEDGER_TOPIC`]: an entry waits
//! [`GOSSIP_WAIT`] in the outbox for others, and the gossiper publishes what waits as one
//! message of up to [`MAX_ENTRIES_PER_BATCH`] entries (one message, one dispatch and one lookup
//! per receiver for every payment of ~50 ms). Receiving them is `gossip::ledger`'s.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::topics::LEDGER_TOPIC;
use super::{Shared, drain_in_batches, lock};
use crate::net;
use crate::protocol::{MAX_ENTRIES_PER_BATCH, encode_entry_batch};

/// How long an entry in the outbox waits for others to be gossiped with.
const GOSSIP_WAIT: Duration = Duration::from_millis(50);
/// Entries waiting in the outbox at most; one beyond is published at once, on its own.
const MAX_OUTBOX: usize = 4_096;
/// Bytes of entries in one batch at most (gossip messages are limited to 128 KiB).
const MAX_BATCH_BYTES: usize = 120 * 1024;
/// How long a stopping node keeps its network up after publishing its outbox, for the
/// messages to leave.
const FLUSH_LINGER: Duration = Duration::from_millis(100);

/// Ledger entries stored here and waiting to be gossiped (at most [`MAX_OUTBOX`]).
pub(super) struct Outbox {
    client: net::Client,
    entries: Mutex<VecDeque<Vec<u8>>>,
    /// Wakes the gossiper ([`run_gossiper`]).
    ready: Notify,
}

impl Outbox {
    /// An empty outbox publishing through `client`.
    pub(super) fn new(client: net::Client) -> Outbox {
        Outbox { client, entries: Mutex::default(), ready: Notify::new() }
    }

    /// Gossips a stored ledger entry: with the others stored within [`GOSSIP_WAIT`], or at
    /// once when the outbox is full.
    pub(super) async fn gossip(&self, bytes: Vec<u8>) {
        let overflow = {
            let mut entries = lock(&self.entries);
            if entries.len() < MAX_OUTBOX {
                entries.push_back(bytes);
                None
            } else {
                Some(bytes)
            }
        };
        match overflow {
            None => self.ready.notify_one(),
            Some(bytes) => self.publish(vec![bytes]).await,
        }
    }

    /// Takes the oldest entries that fit one batch; empty when none waits.
    fn take_batch(&self) -> Vec<Vec<u8>> {
        let mut entries = lock(&self.entries);
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

    async fn publish(&self, batch: Vec<Vec<u8>>) {
        let message = encode_entry_batch(batch.iter().map(Vec::as_slice));
        if let Err(e) = self.client.publish(LEDGER_TOPIC, message).await {
            tracing::debug!("ledger gossip not sent: {e}");
        }
    }

    /// Publishes one batch of what waits; answers whether there was one.
    async fn publish_batch(&self) -> bool {
        let batch = self.take_batch();
        let some = !batch.is_empty();
        if some {
            self.publish(batch).await;
        }
        some
    }

    /// Before the node's tasks stop: publishes what waits (at most 2 s), then gives the
    /// messages [`FLUSH_LINGER`] to leave. Nothing waiting, no delay.
    pub(super) async fn flush_before_stop(&self) {
        if lock(&self.entries).is_empty() {
            return;
        }
        let flush = async { while self.publish_batch().await {} };
        if tokio::time::timeout(Duration::from_secs(2), flush).await.is_err() {
            tracing::warn!("ledger entries not gossiped before stopping: peers catch up on them later");
        }
        tokio::time::sleep(FLUSH_LINGER).await;
    }
}

/// Until shutdown: woken by an entry put in the outbox, waits [`GOSSIP_WAIT`] for more, then
/// gossips what waits; at shutdown, tries to gossip what waits by then (what a stopping node
/// had waiting was published before, see [`Outbox::flush_before_stop`]).
pub(super) async fn run_gossiper(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let outbox = &shared.outbox;
    drain_in_batches(shutdown, &outbox.ready, GOSSIP_WAIT, || outbox.publish_batch()).await
}
