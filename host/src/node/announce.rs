//! The announcer: keeps this node's announcements alive — the provider's manifest, its own
//! recent ledger entries, every blob and every name it holds — at start, when new peers connect (the first few times), and
//! every [`REANNOUNCE_EVERY`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::{Shared, advert, wait_for, wallet};
use crate::net::DhtKey;

/// How often announcements are renewed besides the DHT's own republishing.
const REANNOUNCE_EVERY: Duration = Duration::from_secs(300);
/// Announcements triggered by new connections, at most this many (then only the timer).
const EAGER_ANNOUNCEMENTS: u32 = 8;
/// Connected peers (Kademlia's k) beyond which new connections trigger no announcement.
const WELL_CONNECTED: usize = 20;

/// Until shutdown: announces everything at start, when `connected` tells of a new peer (the
/// first [`EAGER_ANNOUNCEMENTS`] times), and every [`REANNOUNCE_EVERY`].
pub(super) async fn run(shared: Arc<Shared>, connected: Arc<Notify>, shutdown: watch::Receiver<bool>) {
    let mut eager = 0;
    loop {
        announce_all(&shared).await;
        let timer = tokio::time::sleep(REANNOUNCE_EVERY);
        tokio::select! {
            () = wait_for(shutdown.clone()) => return,
            () = timer => {}
            () = connected.notified(), if eager < EAGER_ANNOUNCEMENTS => {
                eager += 1;
                // Let the routing table fill before announcing again.
                tokio::time::sleep(Duration::from_millis(300)).await;
                // Well connected: announcements reach the closest peers now; a consumer's
                // sweep connecting to every provider must not set off a storm of them.
                if shared.client.connected_peers().await.map_or(0, |p| p.len()) >= WELL_CONNECTED {
                    eager = EAGER_ANNOUNCEMENTS;
                }
            }
        }
    }
}

/// Announces the manifest (if providing), every held blob and every held name.
async fn announce_all(shared: &Shared) {
    advert::announce(shared).await;
    wallet::regossip_recent(shared).await;
    let blobs = shared.components.blobs().list().unwrap_or_default();
    for (digest, _) in blobs {
        if let Err(e) = shared.client.provide(DhtKey::Blob(digest)).await {
            tracing::debug!(%digest, "blob announcement incomplete: {e}");
        }
    }
    for pinned in shared.components.registry().names().unwrap_or_default() {
        if let Err(e) = shared.client.provide(DhtKey::Name(pinned.name.clone())).await {
            tracing::debug!(name = %pinned.name, "name announcement incomplete: {e}");
        }
    }
}
