//! `Event`: any signed event this build understands, decoded by its kind.

use super::envelope::{open, read_header};
use super::escrow::{Lock, Release};
use super::token::{ChainLink, Mint, Transfer};
use super::{EventError, EventKind, Header, SeenNonces, Signed, Validity};
use crate::crypto::{Digest, Keypair, PublicKey};

/// A signed event of any kind this build has a body for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A `TOKEN_MINT`.
    Mint(Signed<Mint>),
    /// A `TOKEN_TRANSFER`.
    Transfer(Signed<Transfer>),
    /// A `TOKEN_LOCK`.
    Lock(Signed<Lock>),
    /// A `TOKEN_RELEASE`.
    Release(Signed<Release>),
}

/// An event whose signature has been checked. Only [`Event::verify`] makes one, so a function
/// taking `&Verified` cannot be handed a forgery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified(Event);

impl Verified {
    /// Signs a mint as `keypair`: an event this process signs itself needs no check of its own
    /// signature (saving a verification on every payment authored).
    pub fn sign_mint(keypair: &Keypair, body: Mint, validity: Validity) -> Result<Verified, EventError> {
        Ok(Verified(Event::Mint(Signed::sign(keypair, body, validity)?)))
    }

    /// Signs a transfer as `keypair` (see [`sign_mint`](Verified::sign_mint)).
    pub fn sign_transfer(
        keypair: &Keypair,
        body: Transfer,
        validity: Validity,
    ) -> Result<Verified, EventError> {
        Ok(Verified(Event::Transfer(Signed::sign(keypair, body, validity)?)))
    }

    /// Signs a lock as `keypair` (see [`sign_mint`](Verified::sign_mint)).
    pub fn sign_lock(keypair: &Keypair, body: Lock, validity: Validity) -> Result<Verified, EventError> {
        Ok(Verified(Event::Lock(Signed::sign(keypair, body, validity)?)))
    }

    /// Signs a release as `keypair` (see [`sign_mint`](Verified::sign_mint)); a claim's
    /// evidence must be this process's own signed events, checked when they were made.
    pub fn sign_release(
        keypair: &Keypair,
        body: Release,
        validity: Validity,
    ) -> Result<Verified, EventError> {
        Ok(Verified(Event::Release(Signed::sign(keypair, body, validity)?)))
    }

    /// The verified event.
    pub fn event(&self) -> &Event {
        &self.0
    }
}

impl Event {
    /// Decodes any event, dispatching on the header's kind. Refuses oversized, malformed and
    /// non-canonical input, unknown major versions, unknown kinds and kinds without a body yet.
    pub fn decode(bytes: &[u8]) -> Result<Event, EventError> {
        let mut r = open(bytes)?;
        let header = read_header(&mut r)?;
        match header.kind {
            EventKind::TokenMint => Signed::read_rest(bytes, r, header).map(Event::Mint),
            EventKind::TokenTransfer => Signed::read_rest(bytes, r, header).map(Event::Transfer),
            EventKind::TokenLock => Signed::read_rest(bytes, r, header).map(Event::Lock),
            EventKind::TokenRelease => Signed::read_rest(bytes, r, header).map(Event::Release),
            other => Err(EventError::UnsupportedKind(other)),
        }
    }

    /// Checks the signature (and a claim's evidence's), giving an event other layers can trust.
    pub fn verify(self) -> Result<Verified, EventError> {
        match &self {
            Event::Mint(e) => e.verify_signature()?,
            Event::Transfer(e) => e.verify_signature()?,
            Event::Lock(e) => e.verify_signature()?,
            Event::Release(e) => {
                e.verify_signature()?;
                if let Some(evidence) = &e.body().evidence {
                    evidence.verify_signatures()?;
                }
            }
        }
        Ok(Verified(self))
    }

    /// Checks the event may be accepted as new at `now_ms` (see [`Signed::verify_fresh`]).
    pub fn verify_fresh(&self, now_ms: u64, nonces: &mut SeenNonces) -> Result<(), EventError> {
        match self {
            Event::Mint(e) => e.verify_fresh(now_ms, nonces),
            Event::Transfer(e) => e.verify_fresh(now_ms, nonces),
            Event::Lock(e) => e.verify_fresh(now_ms, nonces),
            Event::Release(e) => e.verify_fresh(now_ms, nonces),
        }
    }

    /// Checks only the times at `now_ms` (see [`Signed::verify_live`]): what a ledger entry
    /// needs, its chain position standing in for a nonce window (a replay is a duplicate).
    pub fn verify_live(&self, now_ms: u64) -> Result<(), EventError> {
        match self {
            Event::Mint(e) => e.verify_live(now_ms),
            Event::Transfer(e) => e.verify_live(now_ms),
            Event::Lock(e) => e.verify_live(now_ms),
            Event::Release(e) => e.verify_live(now_ms),
        }
    }

    /// The header.
    pub fn header(&self) -> &Header {
        match self {
            Event::Mint(e) => e.header(),
            Event::Transfer(e) => e.header(),
            Event::Lock(e) => e.header(),
            Event::Release(e) => e.header(),
        }
    }

    /// The signer.
    pub fn signer(&self) -> PublicKey {
        self.header().signer
    }

    /// The canonical bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Event::Mint(e) => e.bytes(),
            Event::Transfer(e) => e.bytes(),
            Event::Lock(e) => e.bytes(),
            Event::Release(e) => e.bytes(),
        }
    }

    /// SHA-256 of the canonical bytes.
    pub fn hash(&self) -> Digest {
        Digest::of(self.bytes())
    }

    /// The ledger view of a chain entry (a mint, transfer or lock): chain position, network,
    /// payee and amount. `None` for a release, which is no chain entry (it spends a lock).
    pub fn entry(&self) -> Option<LedgerEntry> {
        let (genesis, link, to, amount) = match self {
            Event::Mint(e) => (e.body().genesis, e.body().link, e.body().to, e.body().amount),
            Event::Transfer(e) => (e.body().genesis, e.body().link, e.body().to, e.body().amount),
            Event::Lock(e) => (e.body().genesis, e.body().link, e.body().to, e.body().amount),
            Event::Release(_) => return None,
        };
        Some(LedgerEntry { genesis, link, to, amount })
    }

    /// The network the entry is for.
    pub fn genesis(&self) -> Digest {
        match self {
            Event::Mint(e) => e.body().genesis,
            Event::Transfer(e) => e.body().genesis,
            Event::Lock(e) => e.body().genesis,
            Event::Release(e) => e.body().genesis,
        }
    }

    /// The position in its signer's chain, for a chain entry.
    pub fn seq(&self) -> Option<u64> {
        self.entry().map(|e| e.link.seq)
    }
}

/// What the ledger rules look at in a chain entry, whatever its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The network the entry is for.
    pub genesis: Digest,
    /// Its place in the signer's chain.
    pub link: ChainLink,
    /// The credited account.
    pub to: PublicKey,
    /// The amount moved or created.
    pub amount: u64,
}

/// The most ledger entries one gossiped batch carries.
pub const MAX_ENTRIES_PER_BATCH: usize = 64;

/// A batch of ledger entries as gossiped on `cue/ledger/2`: the canonical CBOR array of 1 to
/// [`MAX_ENTRIES_PER_BATCH`] byte strings, each a whole signed `TOKEN_MINT`,
/// `TOKEN_TRANSFER`, `TOKEN_LOCK` or `TOKEN_RELEASE` as [`Event::decode`] reads it. The batch itself is not signed: each entry
/// carries its own signature, checked on its own.
pub fn encode_entry_batch<'e>(entries: impl ExactSizeIterator<Item = &'e [u8]>) -> Vec<u8> {
    let mut w = super::codec::Writer::default();
    w.array(entries.len() as u64);
    for entry in entries {
        w.bytes(entry);
    }
    w.into_bytes()
}

/// Reads a batch written by [`encode_entry_batch`] (the entries are neither decoded nor
/// verified here). Refuses an empty or oversized batch, an entry beyond [`MAX_EVENT_BYTES`],
/// any byte after the array, and any other encoding of the same entries (a head longer than
/// its shortest form): a batch has exactly one encoding, so one batch is one gossip message id.
///
/// [`MAX_EVENT_BYTES`]: super::MAX_EVENT_BYTES
pub fn decode_entry_batch(bytes: &[u8]) -> Result<Vec<&[u8]>, EventError> {
    let mut r = super::codec::Reader::new(bytes);
    let len = r.array_len()?;
    if len == 0 || len > MAX_ENTRIES_PER_BATCH as u64 {
        return Err(EventError::Malformed(format!(
            "a batch holds 1 to {MAX_ENTRIES_PER_BATCH} entries, not {len}"
        )));
    }
    let mut entries = Vec::with_capacity(len as usize);
    for _ in 0..len {
        let entry = r.bytes()?;
        if entry.len() > super::MAX_EVENT_BYTES {
            return Err(EventError::TooLarge { size: entry.len(), limit: super::MAX_EVENT_BYTES });
        }
        entries.push(entry);
    }
    r.finish()?;
    if encode_entry_batch(entries.iter().copied()) != bytes {
        return Err(EventError::NonCanonical);
    }
    Ok(entries)
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_and_is_refused_empty_oversized_or_with_trailing_bytes() {
        let entries: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 10 + i as usize]).collect();
        let bytes = encode_entry_batch(entries.iter().map(Vec::as_slice));
        let read = decode_entry_batch(&bytes).unwrap();
        assert_eq!(read, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());

        assert!(decode_entry_batch(&encode_entry_batch(std::iter::empty())).is_err());
        let too_many: Vec<Vec<u8>> = (0..=MAX_ENTRIES_PER_BATCH).map(|_| vec![1]).collect();
        assert!(decode_entry_batch(&encode_entry_batch(too_many.iter().map(Vec::as_slice))).is_err());
        let huge = [vec![0u8; super::super::MAX_EVENT_BYTES + 1]];
        assert!(matches!(
            decode_entry_batch(&encode_entry_batch(huge.iter().map(Vec::as_slice))),
            Err(EventError::TooLarge { .. })
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_entry_batch(&trailing).is_err());
        assert!(decode_entry_batch(b"garbage").is_err());
    }
}
