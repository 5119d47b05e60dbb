//! The seen-nonce window: refuses a replayed event for as long as the event is live.

use std::collections::{BTreeSet, HashMap};

use super::{EventError, Header};
use crate::crypto::PublicKey;

/// Default number of live nonces remembered (about 100 bytes each).
pub const DEFAULT_NONCE_CAPACITY: usize = 262_144;

/// The nonces of live (unexpired) events this node accepted, keyed by signer.
///
/// An event can only be accepted before its expiry (see [`Header::expires_ms`]), so a nonce is
/// remembered until the event expires and then forgotten: after that the event is refused as
/// expired instead. The window is bounded by `capacity`; when it is full of live nonces a new
/// event is refused with [`EventError::ReplayWindowFull`] (the sender may retry later) rather
/// than forgetting a live nonce, which would let a replay through.
#[derive(Debug)]
pub struct SeenNonces {
    capacity: usize,
    /// Signer and nonce to the expiry of the event that used them.
    live: HashMap<(PublicKey, [u8; 16]), u64>,
    /// The same entries ordered by expiry, so expired ones are pruned from the front.
    by_expiry: BTreeSet<(u64, PublicKey, [u8; 16])>,
}

impl SeenNonces {
    /// An empty window holding at most `capacity` live nonces.
    pub fn new(capacity: usize) -> SeenNonces {
        SeenNonces { capacity, live: HashMap::new(), by_expiry: BTreeSet::new() }
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
        }
    }

    /// Refuses the header if its nonce was seen, or if there is no room to remember it.
    /// Does not record it: call [`SeenNonces::record`] once the event is accepted, so that an
    /// event refused for another reason can be retried.
    pub fn check(&mut self, header: &Header, now_ms: u64) -> Result<(), EventError> {
        if self.live.contains_key(&(header.signer, header.nonce)) {
            return Err(EventError::Replay);
        }
        if self.live.len() >= self.capacity {
            self.prune(now_ms);
            if self.live.len() >= self.capacity {
                return Err(EventError::ReplayWindowFull { capacity: self.capacity });
            }
        }
        Ok(())
    }

    /// Remembers the nonce of an accepted event until the event expires.
    pub fn record(&mut self, header: &Header) {
        let key = (header.signer, header.nonce);
        if self.live.insert(key, header.expires_ms).is_none() {
            self.by_expiry.insert((header.expires_ms, header.signer, header.nonce));
        }
    }
}
