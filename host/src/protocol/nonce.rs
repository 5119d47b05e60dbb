//! The seen-nonce window: refuses a replayed event for as long as the event is live.

use std::collections::{BTreeSet, HashMap};

use super::{EventError, Header};
use crate::crypto::PublicKey;

/// Default number of live nonces remembered (about 100 bytes each).
pub const DEFAULT_NONCE_CAPACITY: usize = 262_144;
/// Default share of the window one signer may hold in a window built with
/// [`SeenNonces::fair`]: a quarter, so a flood of fresh nonces from one key never fills it.
pub const DEFAULT_SIGNER_NONCES: usize = DEFAULT_NONCE_CAPACITY / 4;

/// The nonces of live (unexpired) events this node accepted, keyed by signer.
///
/// An event can only be accepted before its expiry (see [`Header::expires_ms`]), so a nonce is
/// remembered until the event expires and then forgotten: after that the event is refused as
/// expired instead. The window is bounded by `capacity`; when it is full of live nonces a new
/// event is refused with [`EventError::ReplayWindowFull`] (the sender may retry later) rather
/// than forgetting a live nonce, which would let a replay through. A window built with
/// [`SeenNonces::fair`] also bounds each signer's share: a signer at its share is refused with
/// [`EventError::SignerWindowFull`] while other signers are still served.
#[derive(Debug)]
pub struct SeenNonces {
    capacity: usize,
    /// Most live nonces of one signer.
    per_signer: usize,
    /// Live nonces per signer (signers with none are removed).
    by_signer: HashMap<PublicKey, usize>,
    /// Signer and nonce to the expiry of the event that used them.
    live: HashMap<(PublicKey, [u8; 16]), u64>,
    /// The same entries ordered by expiry, so expired ones are pruned from the front.
    by_expiry: BTreeSet<(u64, PublicKey, [u8; 16])>,
}

impl SeenNonces {
    /// An empty window holding at most `capacity` live nonces.
    pub fn new(capacity: usize) -> SeenNonces {
        SeenNonces::fair(capacity, capacity)
    }

    /// An empty window holding at most `capacity` live nonces, at most `per_signer` of them of
    /// one signer.
    pub fn fair(capacity: usize, per_signer: usize) -> SeenNonces {
        SeenNonces {
            capacity,
            per_signer: per_signer.clamp(1, capacity.max(1)),
            by_signer: HashMap::new(),
            live: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Number of live nonces remembered.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Forgets nonces whose events expired at or before `now_ms`.
    pub fn prune(&mut self, now_ms: u64) {
        while let Some(&(expires, signer, nonce)) = self.by_expiry.first() {
            if expires > now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.live.remove(&(signer, nonce));
            self.forget_one_of(&signer);
        }
    }

    fn forget_one_of(&mut self, signer: &PublicKey) {
        if let Some(count) = self.by_signer.get_mut(signer) {
            *count -= 1;
            if *count == 0 {
                self.by_signer.remove(signer);
            }
        }
    }

    fn held_by(&self, signer: &PublicKey) -> usize {
        self.by_signer.get(signer).copied().unwrap_or(0)
    }

    /// Refuses the header if its nonce was seen, or if there is no room to remember it.
    /// Does not record it: call [`SeenNonces::record`] once the event is accepted, so that an
    /// event refused for another reason can be retried.
    pub fn check(&mut self, header: &Header, now_ms: u64) -> Result<(), EventError> {
        if self.live.contains_key(&(header.signer, header.nonce)) {
            return Err(EventError::Replay);
        }
        if self.live.len() >= self.capacity || self.held_by(&header.signer) >= self.per_signer {
            self.prune(now_ms);
            if self.live.len() >= self.capacity {
                return Err(EventError::ReplayWindowFull { capacity: self.capacity });
            }
            if self.held_by(&header.signer) >= self.per_signer {
                return Err(EventError::SignerWindowFull { per_signer: self.per_signer });
            }
        }
        Ok(())
    }

    /// Remembers the nonce of an accepted event until the event expires.
    pub fn record(&mut self, header: &Header) {
        self.record_nonce(header.signer, header.nonce, header.expires_ms);
    }

    /// Remembers `signer`'s `nonce` until `expires_ms` (an event accepted before a restart,
    /// read back from the log).
    pub fn record_nonce(&mut self, signer: PublicKey, nonce: [u8; 16], expires_ms: u64) {
        if self.live.insert((signer, nonce), expires_ms).is_none() {
            self.by_expiry.insert((expires_ms, signer, nonce));
            *self.by_signer.entry(signer).or_default() += 1;
        }
    }
}
