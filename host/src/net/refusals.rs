//! Counts of refused input — garbage connections, malformed requests, forged claims — kept
//! beside the log lines that describe each one, so an operator sees at a glance what a node is
//! fending off (`cue status`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// An incoming connection that failed the handshake (garbage, wrong protocol, limits).
    Connection,
    /// An inbound RPC request that could not be read or was out of bounds.
    Request,
    /// A DHT record or provider record outside Cue's rules.
    Record,
    /// A resource manifest that was forged, expired, or someone else's.
    Manifest,
    /// A component manifest that did not verify or claimed a name owned by another key.
    ComponentManifest,
    /// A blob that did not match its hash or size.
    Blob,
    /// A gossiped ledger entry that did not verify or broke the ledger rules.
    LedgerEntry,
    /// Work dropped or answered "busy" because a bound was reached.
    Overload,
    /// A message, record or request of another network (another genesis).
    OtherNetwork,
    /// A gossiped attestation that was forged or expired, or that names no contract its
    /// attester was a party to (it weighs nothing), or a forged equivocation proof.
    Attestation,
}

impl Refusal {
    const ALL: [Refusal; 10] = [
        Refusal::Connection,
        Refusal::Request,
        Refusal::Record,
        Refusal::Manifest,
        Refusal::ComponentManifest,
        Refusal::Blob,
        Refusal::LedgerEntry,
        Refusal::Overload,
        Refusal::OtherNetwork,
        Refusal::Attestation,
    ];

    /// The name `cue status` shows.
    pub const fn name(self) -> &'static str {
        match self {
            Refusal::Connection => "connections",
            Refusal::Request => "requests",
            Refusal::Record => "dht-records",
            Refusal::Manifest => "manifests",
            Refusal::ComponentManifest => "component-manifests",
            Refusal::Blob => "blobs",
            Refusal::LedgerEntry => "ledger-entries",
            Refusal::Overload => "overload",
            Refusal::OtherNetwork => "other-network",
            Refusal::Attestation => "attestations",
        }
    }
}

/// The counters, shared by the network task and the node.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: [AtomicU64; 10],
}

impl Refusals {
    /// Counts one refusal of `kind`.
    pub fn count(&self, kind: Refusal) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        Refusal::ALL
            .iter()
            .map(|kind| (kind.name(), self.counts[*kind as usize].load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_kind_apart() {
        let refusals = Refusals::default();
        refusals.count(Refusal::Blob);
        refusals.count(Refusal::Blob);
        refusals.count(Refusal::Connection);
        let snapshot = refusals.snapshot();
        assert_eq!(snapshot["blobs"], 2);
        assert_eq!(snapshot["connections"], 1);
        assert_eq!(snapshot["manifests"], 0);
        assert_eq!(snapshot.len(), Refusal::ALL.len());
    }
}
