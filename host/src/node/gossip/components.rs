//! Gossiped component manifests (`cue/components/1`): verified and learnt, pinning a new name
//! to its publisher; one for a name someone else owns here is refused.

use super::super::Shared;
use crate::clock::now_ms;
use crate::crypto::PeerId;
use crate::net::{GossipVerdict, Refusal};
use crate::protocol::open_component_manifest;
use crate::store::Added;

/// A component manifest arrived by gossip: verify it and learn it, or refuse it (counted).
/// Rejected when malformed or forged; ignored when valid but not learnt here (a name another
/// publisher owns here: names are pinned per node, first come); accepted otherwise.
pub(in crate::node) fn on_gossip(shared: &Shared, from: &PeerId, data: &[u8]) -> GossipVerdict {
    let manifest = match open_component_manifest(data, now_ms()) {
        Ok(manifest) => manifest,
        Err(e) => {
            shared.refusals.count(Refusal::ComponentManifest);
            tracing::info!(%from, "refused a gossiped component manifest: {e}");
            return GossipVerdict::Reject;
        }
    };
    let body = manifest.body();
    match shared.components.registry().add(&manifest) {
        Ok(Added::New) => {
            tracing::info!(name = %body.name, version = %body.version, "learnt a component");
            GossipVerdict::Accept
        }
        Ok(_) => GossipVerdict::Accept,
        Err(e) => {
            shared.refusals.count(Refusal::ComponentManifest);
            tracing::info!(%from, name = %body.name, "refused a gossiped component manifest: {e}");
            GossipVerdict::Ignore
        }
    }
}
