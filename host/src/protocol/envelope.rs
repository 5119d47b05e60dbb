//! `Signed<T>`: the envelope every event travels and is stored in — header, body, signature.
//!
//! Wire form (canonical CBOR, see [`codec`](super::codec) and `docs/ledger.md`):
//!
//! ```text
//! event     = [header, body, signature: bstr .size 64]
//! header    = [version: tstr, kind: tstr, signer: bstr .size 32,
//!              timestamp_ms: uint, expires_ms: uint, nonce: bstr .size 16]
//! signed message = "cue-signed-event" 0x00 || kind tag || 0x00 || header || body
//! ```
//!
//! where `header` and `body` in the signed message are their canonical CBOR bytes exactly as in
//! the event.

use semver::Version;

use super::codec::{Reader, Writer};
use super::{EventError, EventKind, SeenNonces};
use crate::crypto::{Digest, Keypair, PublicKey, Signature};

/// The protocol version this build writes into every header.
pub const PROTOCOL_VERSION: Version = Version::new(1, 0, 0);
/// Largest encoded event accepted, in bytes; bigger input is refused before decoding.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Longest lifetime (`expires_ms - timestamp_ms`) an event may ask for: bounds how long its
/// nonce must be remembered.
pub const MAX_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;
/// How far in the future a timestamp may be (clock skew between peers).
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// Prefix of every signed message: keeps event signatures apart from any other use of the key
/// (libp2p signs its handshakes with the same key under its own prefixes).
const SIGNING_CONTEXT: &[u8] = b"cue-signed-event";

/// The part of an event that says who, when, and what kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version of the sender; only [`PROTOCOL_VERSION`]'s major is understood.
    pub version: Version,
    /// What the body is; its tag is the domain the signature is made in.
    pub kind: EventKind,
    /// Who signed (the account, the peer).
    pub signer: PublicKey,
    /// When it was signed, milliseconds since the Unix epoch (signer's clock).
    pub timestamp_ms: u64,
    /// After this instant (ms since the epoch) a node no longer accepts it as new.
    pub expires_ms: u64,
    /// Random, so two otherwise equal events differ and a replay is recognisable.
    pub nonce: [u8; 16],
}

impl Header {
    fn write(&self, w: &mut Writer) {
        w.array(6)
            .text(&self.version.to_string())
            .text(self.kind.tag())
            .bytes(self.signer.as_bytes())
            .uint(self.timestamp_ms)
            .uint(self.expires_ms)
            .bytes(&self.nonce);
    }

    fn read(r: &mut Reader<'_>) -> Result<Header, EventError> {
        r.array(6)?;
        let version = r.text()?;
        let version = Version::parse(version)
            .map_err(|e| EventError::Malformed(format!("version {version:?}: {e}")))?;
        if version.major != PROTOCOL_VERSION.major {
            return Err(EventError::UnknownMajorVersion {
                found: version,
                supported: PROTOCOL_VERSION.major,
            });
        }
        let tag = r.text()?;
        let kind = EventKind::from_tag(tag).ok_or_else(|| EventError::UnknownKind(tag.into()))?;
        let signer = PublicKey::from_bytes(r.byte_array()?).map_err(|_| EventError::InvalidSigner)?;
        Ok(Header {
            version,
            kind,
            signer,
            timestamp_ms: r.uint()?,
            expires_ms: r.uint()?,
            nonce: r.byte_array()?,
        })
    }
}

/// The body of one kind of event.
pub trait EventBody: Sized {
    /// The kind (and so the signing domain) of this body.
    const KIND: EventKind;

    /// Writes the body as one canonical CBOR item.
    #[doc(hidden)]
    fn write(&self, w: &mut Writer);

    /// Reads what [`EventBody::write`] writes.
    #[doc(hidden)]
    fn read(r: &mut Reader<'_>) -> Result<Self, EventError>;
}

/// When an event is signed and until when it may be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Signing time, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Expiry, ms since the Unix epoch (at most [`MAX_LIFETIME_MS`] after the timestamp).
    pub expires_ms: u64,
}

impl Validity {
    /// Valid from `now_ms` for `lifetime_ms` (capped at [`MAX_LIFETIME_MS`]).
    pub fn starting(now_ms: u64, lifetime_ms: u64) -> Validity {
        Validity { timestamp_ms: now_ms, expires_ms: now_ms.saturating_add(lifetime_ms.min(MAX_LIFETIME_MS)) }
    }
}

/// A body of kind `T::KIND`, signed by the header's signer.
///
/// Holding a `Signed<T>` does not mean it verified: decoding checks shape, version and kind;
/// [`Signed::verify_signature`] and [`Signed::verify_fresh`] check the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed<T> {
    header: Header,
    body: T,
    signature: Signature,
    /// The canonical encoding, kept so the event is stored, hashed and forwarded byte for byte:
    /// `0x83 || header || body || signature`.
    encoded: Vec<u8>,
    /// Length of the encoded header (it starts at byte 1), to rebuild the signed message.
    header_len: usize,
    /// Length of the encoded body (it follows the header).
    body_len: usize,
}

impl<T: EventBody> Signed<T> {
    /// Signs `body` with `keypair`, with a fresh random nonce.
    pub fn sign(keypair: &Keypair, body: T, validity: Validity) -> Result<Signed<T>, EventError> {
        let nonce = crate::crypto::unique_bytes().map_err(|e| EventError::Signing(e.to_string()))?;
        Ok(Signed::sign_with_nonce(keypair, body, validity, nonce))
    }

    /// Signs `body` with a caller-chosen nonce. The nonce must never repeat for this key
    /// (replay protection relies on it); this exists for reproducible test vectors.
    pub fn sign_with_nonce(keypair: &Keypair, body: T, validity: Validity, nonce: [u8; 16]) -> Signed<T> {
        let header = Header {
            version: PROTOCOL_VERSION,
            kind: T::KIND,
            signer: keypair.public(),
            timestamp_ms: validity.timestamp_ms,
            expires_ms: validity.expires_ms,
            nonce,
        };
        let (header_bytes, body_bytes) = encode_parts(&header, &body);
        let signature = keypair.sign(&signing_message(T::KIND, &header_bytes, &body_bytes));
        let encoded = assemble(&header_bytes, &body_bytes, &signature);
        Signed {
            header,
            body,
            signature,
            encoded,
            header_len: header_bytes.len(),
            body_len: body_bytes.len(),
        }
    }

    /// Decodes one event of kind `T::KIND`, refusing non-canonical bytes, an unknown major
    /// version and another kind ([`EventError::WrongDomain`]). Does not verify the signature.
    pub fn decode(bytes: &[u8]) -> Result<Signed<T>, EventError> {
        let mut r = open(bytes)?;
        let header = Header::read(&mut r)?;
        if header.kind != T::KIND {
            return Err(EventError::WrongDomain { expected: T::KIND, found: header.kind });
        }
        Signed::read_rest(bytes, r, header)
    }

    pub(crate) fn read_rest(
        bytes: &[u8],
        mut r: Reader<'_>,
        header: Header,
    ) -> Result<Signed<T>, EventError> {
        let body = T::read(&mut r)?;
        let signature = Signature(r.byte_array()?);
        r.finish()?;
        let (header_bytes, body_bytes) = encode_parts(&header, &body);
        if assemble(&header_bytes, &body_bytes, &signature) != bytes {
            return Err(EventError::NonCanonical);
        }
        Ok(Signed {
            header,
            body,
            signature,
            encoded: bytes.to_vec(),
            header_len: header_bytes.len(),
            body_len: body_bytes.len(),
        })
    }

    /// Checks the signature against the header's signer in the header's domain.
    ///
    /// This is all a third party needs to check a stored event: it is how equivocation proofs
    /// and historical chains are verified, long after the event expired.
    pub fn verify_signature(&self) -> Result<(), EventError> {
        let header_end = 1 + self.header_len;
        let header = &self.encoded[1..header_end];
        let body = &self.encoded[header_end..header_end + self.body_len];
        self.header
            .signer
            .verify(&signing_message(T::KIND, header, body), &self.signature)
            .map_err(|_| EventError::BadSignature)
    }

    /// Checks the event may be accepted as new at `now_ms`: timestamps sane, not expired, nonce
    /// not seen in `nonces`. Does not check the signature and does not record the nonce.
    pub fn verify_fresh(&self, now_ms: u64, nonces: &mut SeenNonces) -> Result<(), EventError> {
        self.verify_live(now_ms)?;
        nonces.check(&self.header, now_ms)
    }

    /// Checks only the times at `now_ms`: sane lifetime, not from the future, not expired.
    ///
    /// For statements that may be served and read many times while they live, such as a
    /// resource manifest, where seeing the same event twice is not a replay.
    pub fn verify_live(&self, now_ms: u64) -> Result<(), EventError> {
        check_times(&self.header, now_ms)
    }

    /// Checks the times at `now_ms` except expiry: a sane lifetime and a timestamp not from
    /// the future.
    ///
    /// For permanent claims, such as a component manifest, which stay true after the envelope
    /// expires: the expiry only bounds how long a nonce must be remembered.
    pub fn verify_issued(&self, now_ms: u64) -> Result<(), EventError> {
        check_issued(&self.header, now_ms)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The body.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// The canonical bytes of the whole event.
    pub fn bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// SHA-256 of the canonical bytes: the event's identity in chains, links and the log.
    pub fn hash(&self) -> Digest {
        Digest::of(&self.encoded)
    }
}

/// Checks the timestamps of a header against the receiver's clock.
fn check_times(header: &Header, now_ms: u64) -> Result<(), EventError> {
    check_issued(header, now_ms)?;
    if header.expires_ms <= now_ms {
        return Err(EventError::Expired { expires_ms: header.expires_ms, now_ms });
    }
    Ok(())
}

/// Checks a header's lifetime and that its timestamp is not ahead of the receiver's clock.
fn check_issued(header: &Header, now_ms: u64) -> Result<(), EventError> {
    if header.expires_ms < header.timestamp_ms || header.expires_ms - header.timestamp_ms > MAX_LIFETIME_MS {
        return Err(EventError::BadLifetime {
            timestamp_ms: header.timestamp_ms,
            expires_ms: header.expires_ms,
        });
    }
    if header.timestamp_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(EventError::FromTheFuture { timestamp_ms: header.timestamp_ms, now_ms });
    }
    Ok(())
}

/// Starts reading an event: size limit and the outer array.
pub(crate) fn open(bytes: &[u8]) -> Result<Reader<'_>, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge { size: bytes.len(), limit: MAX_EVENT_BYTES });
    }
    let mut r = Reader::new(bytes);
    r.array(3)?;
    Ok(r)
}

/// Reads the header of an event (after [`open`]).
pub(crate) fn read_header(r: &mut Reader<'_>) -> Result<Header, EventError> {
    Header::read(r)
}

fn encode_parts<T: EventBody>(header: &Header, body: &T) -> (Vec<u8>, Vec<u8>) {
    let mut h = Writer::default();
    header.write(&mut h);
    let mut b = Writer::default();
    body.write(&mut b);
    (h.into_bytes(), b.into_bytes())
}

fn assemble(header: &[u8], body: &[u8], signature: &Signature) -> Vec<u8> {
    let mut w = Writer::default();
    w.array(3).raw(header).raw(body).bytes(&signature.0);
    w.into_bytes()
}

fn signing_message(kind: EventKind, header: &[u8], body: &[u8]) -> Vec<u8> {
    let tag = kind.tag().as_bytes();
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + tag.len() + 2 + header.len() + body.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.push(0);
    message.extend_from_slice(tag);
    message.push(0);
    message.extend_from_slice(header);
    message.extend_from_slice(body);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ChainLink, Mint, Transfer};

    const NOW: u64 = 1_800_000_000_000;

    fn body() -> Transfer {
        Transfer {
            genesis: Digest([1; 32]),
            link: ChainLink::FIRST,
            to: Keypair::from_seed([2; 32]).public(),
            amount: 100,
            reference: None,
        }
    }

    fn transfer(key: &Keypair, validity: Validity) -> Signed<Transfer> {
        Signed::sign(key, body(), validity).unwrap()
    }

    /// The documented test vector (docs/ledger.md): fixed key, body, times and nonce.
    #[test]
    fn test_vector_is_stable() {
        let key = Keypair::from_seed([7; 32]);
        let validity = Validity::starting(NOW, 3_600_000);
        let event = Signed::sign_with_nonce(&key, body(), validity, [9; 16]);
        let decoded = Signed::<Transfer>::decode(event.bytes()).unwrap();
        decoded.verify_signature().unwrap();
        assert_eq!(hex::encode(event.bytes()), include_str!("test-vector.hex").trim());
    }

    #[test]
    fn each_refusal_has_its_own_error() {
        let key = Keypair::from_seed([7; 32]);
        let event = transfer(&key, Validity::starting(NOW, 60_000));
        let mut nonces = SeenNonces::new(16);
        event.verify_signature().unwrap();
        event.verify_fresh(NOW, &mut nonces).unwrap();

        let mut forged = event.bytes().to_vec();
        *forged.last_mut().unwrap() ^= 1;
        let forged = Signed::<Transfer>::decode(&forged).unwrap();
        assert_eq!(forged.verify_signature(), Err(EventError::BadSignature));

        assert!(matches!(
            Signed::<Mint>::decode(event.bytes()),
            Err(EventError::WrongDomain { expected: EventKind::TokenMint, found: EventKind::TokenTransfer })
        ));

        let v2 = [&event.bytes()[..3], b"2.1.0", &event.bytes()[8..]].concat();
        assert!(matches!(
            Signed::<Transfer>::decode(&v2),
            Err(EventError::UnknownMajorVersion { supported: 1, .. })
        ));
        let minor = [&event.bytes()[..3], b"1.7.0", &event.bytes()[8..]].concat();
        let minor = Signed::<Transfer>::decode(&minor).unwrap();
        assert_eq!(minor.verify_signature(), Err(EventError::BadSignature));

        assert!(matches!(event.verify_fresh(NOW + 60_000, &mut nonces), Err(EventError::Expired { .. })));
        assert!(matches!(
            event.verify_fresh(NOW - MAX_CLOCK_SKEW_MS - 1, &mut nonces),
            Err(EventError::FromTheFuture { .. })
        ));
        let too_long = transfer(&key, Validity { timestamp_ms: NOW, expires_ms: NOW + MAX_LIFETIME_MS + 1 });
        assert!(matches!(too_long.verify_fresh(NOW, &mut nonces), Err(EventError::BadLifetime { .. })));

        nonces.record(event.header());
        assert_eq!(event.verify_fresh(NOW, &mut nonces), Err(EventError::Replay));
    }

    #[test]
    fn a_flood_of_fresh_nonces_from_one_signer_leaves_room_for_every_other_signer() {
        let flooder = Keypair::from_seed([7; 32]);
        let mut nonces = SeenNonces::fair(8, 2);
        let mut refused = 0;
        for _ in 0..100 {
            let e = transfer(&flooder, Validity::starting(NOW, 60_000));
            match e.verify_fresh(NOW, &mut nonces) {
                Ok(()) => nonces.record(e.header()),
                Err(err) => {
                    assert_eq!(err, EventError::SignerWindowFull { per_signer: 2 });
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 98, "the flooder holds its share and no more");
        for seed in 10..13 {
            let other = Keypair::from_seed([seed; 32]);
            for _ in 0..2 {
                let e = transfer(&other, Validity::starting(NOW, 60_000));
                e.verify_fresh(NOW, &mut nonces).unwrap_or_else(|e| panic!("another signer refused: {e}"));
                nonces.record(e.header());
            }
        }
        let late = transfer(&flooder, Validity::starting(NOW + 60_000, 60_000));
        late.verify_fresh(NOW + 60_000, &mut nonces).expect("the flooder's expired nonces were pruned");
    }

    #[test]
    fn the_nonce_window_is_bounded_and_forgets_expired_nonces() {
        let key = Keypair::from_seed([7; 32]);
        let mut nonces = SeenNonces::new(2);
        let events: Vec<_> = (0..3).map(|_| transfer(&key, Validity::starting(NOW, 1_000))).collect();
        for e in &events[..2] {
            e.verify_fresh(NOW, &mut nonces).unwrap();
            nonces.record(e.header());
        }
        assert_eq!(
            events[2].verify_fresh(NOW, &mut nonces),
            Err(EventError::ReplayWindowFull { capacity: 2 })
        );
        let later = transfer(&key, Validity::starting(NOW + 1_000, 1_000));
        later.verify_fresh(NOW + 1_000, &mut nonces).unwrap();
        assert_eq!(nonces.len(), 0, "expired nonces were pruned to make room");
    }

    #[test]
    fn non_canonical_and_oversized_input_is_refused() {
        let key = Keypair::from_seed([7; 32]);
        let event = transfer(&key, Validity::starting(NOW, 60_000));
        let bytes = event.bytes();
        let at = bytes.len() - 68; // the amount, 0x18 0x64
        let long_form = [&bytes[..at - 1], &[0x19, 0x00, 0x64], &bytes[at + 1..]].concat();
        assert_eq!(Signed::<Transfer>::decode(&long_form), Err(EventError::NonCanonical));
        let huge = vec![0u8; MAX_EVENT_BYTES + 1];
        assert!(matches!(Signed::<Transfer>::decode(&huge), Err(EventError::TooLarge { .. })));
    }
}
