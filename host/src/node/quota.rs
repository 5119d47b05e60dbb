//! Places: a bounded kind of work (job streams, jobs, requests in progress, blob transfers,
//! gossip being checked) that no single remote peer can fill. Each kind has a total and a
//! per-peer share; a peer at its share is refused while others are still served. A place is
//! held by a [`Place`] and given back when it drops.
//!
//! Shares are per peer id (per key): a stranger with many keys can take more, as many keys as
//! it runs — what bounds that is the total, and the price of each key's work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::lock;
use crate::crypto::PeerId;

/// Why no place was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum Full {
    /// Every place of the kind is taken.
    #[error("all {total} places are taken")]
    Total {
        /// The kind's total.
        total: usize,
    },
    /// The peer holds its whole share.
    #[error("this peer holds its share of {per_peer} of the {total} places")]
    Peer {
        /// The most one peer may hold.
        per_peer: usize,
        /// The kind's total.
        total: usize,
    },
}

/// The places of one kind of work.
pub(super) struct Places {
    total: usize,
    per_peer: usize,
    /// Places held in all, and by each peer holding any (peers at zero are removed, so the map
    /// holds at most `total` entries).
    held: Mutex<(usize, HashMap<PeerId, usize>)>,
}

/// A place held; given back when dropped.
pub(super) struct Place {
    places: Arc<Places>,
    peer: PeerId,
}

/// The share of a kind's `total` one peer may hold: all but a quarter (at least one place is
/// always left for others when the total is above one).
pub(super) fn share_of(total: usize) -> usize {
    total.saturating_sub(total.div_ceil(4)).max(1)
}

impl Places {
    /// `total` places, at most `per_peer` (at least 1) of them for one peer.
    pub(super) fn new(total: usize, per_peer: usize) -> Arc<Places> {
        Arc::new(Places { total, per_peer: per_peer.clamp(1, total.max(1)), held: Mutex::default() })
    }

    /// `total` places, each peer's share being [`share_of`] the total.
    pub(super) fn shared(total: usize) -> Arc<Places> {
        Places::new(total, share_of(total))
    }

    /// A place for `peer`, if the kind and the peer's share have room.
    pub(super) fn take(self: &Arc<Self>, peer: PeerId) -> Result<Place, Full> {
        let mut held = lock(&self.held);
        if held.0 >= self.total {
            return Err(Full::Total { total: self.total });
        }
        let mine = held.1.entry(peer).or_default();
        if *mine >= self.per_peer {
            return Err(Full::Peer { per_peer: self.per_peer, total: self.total });
        }
        *mine += 1;
        held.0 += 1;
        Ok(Place { places: self.clone(), peer })
    }

    /// Places held in all.
    pub(super) fn held(&self) -> usize {
        lock(&self.held).0
    }

    /// Places `peer` holds.
    pub(super) fn held_by(&self, peer: &PeerId) -> usize {
        lock(&self.held).1.get(peer).copied().unwrap_or(0)
    }

    /// The kind's total.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// The most one peer may hold.
    pub(super) fn per_peer(&self) -> usize {
        self.per_peer
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = lock(&self.places.held);
        held.0 = held.0.saturating_sub(1);
        if let Some(mine) = held.1.get_mut(&self.peer) {
            *mine -= 1;
            if *mine == 0 {
                held.1.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    fn peer(seed: u8) -> PeerId {
        Keypair::from_seed([seed; 32]).peer_id()
    }

    #[test]
    fn one_peer_takes_at_most_its_share_and_the_rest_stays_for_others() {
        let places = Places::shared(8);
        assert_eq!(places.per_peer(), 6);
        let flood: Vec<Place> = (0..100).filter_map(|_| places.take(peer(1)).ok()).collect();
        assert_eq!(flood.len(), 6);
        assert_eq!(places.take(peer(1)).err(), Some(Full::Peer { per_peer: 6, total: 8 }));
        let others: Vec<Place> = [2, 3].iter().filter_map(|p| places.take(peer(*p)).ok()).collect();
        assert_eq!(others.len(), 2, "the quarter left is others'");
        assert_eq!(places.take(peer(4)).err(), Some(Full::Total { total: 8 }));
        drop(flood);
        assert_eq!((places.held(), places.held_by(&peer(1))), (2, 0), "dropped places are given back");
        assert_eq!(lock(&places.held).1.len(), 2, "a peer holding nothing is forgotten");
    }

    #[test]
    fn a_single_place_is_taken_by_whoever_asks_first() {
        let places = Places::shared(1);
        let first = places.take(peer(1)).unwrap();
        assert!(places.take(peer(2)).is_err());
        drop(first);
        assert!(places.take(peer(2)).is_ok());
    }
}
