//! Keys, signatures, hashes and peer ids: the only importer of ed25519-dalek and bs58.
//!
//! An agent in Cue is one ed25519 key. The same key is the node's libp2p identity, so its
//! [`PeerId`] is computed exactly as `libp2p::identity` computes it (see [`PeerId`]), and an
//! account on the ledger is named by that peer id.
//!
//! The key lives in the data directory as a file of 68 bytes — the libp2p protobuf encoding of an
//! ed25519 private key (`08 01 12 40` followed by the 32-byte secret and the 32-byte public key),
//! so `libp2p::identity::Keypair::from_protobuf_encoding` reads the very same file. It is created
//! with mode 0600 on first use.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// Length of an ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// The protobuf prefix of a libp2p `PrivateKey { Type: Ed25519, Data: <64 bytes> }`.
const KEY_FILE_PREFIX: [u8; 4] = [0x08, 0x01, 0x12, 0x40];
/// The protobuf prefix of a libp2p `PublicKey { Type: Ed25519, Data: <32 bytes> }`.
const PUBLIC_KEY_PROTOBUF_PREFIX: [u8; 4] = [0x08, 0x01, 0x12, 0x20];
/// Multihash prefix of a peer id: code 0x00 (identity), length 36 (the protobuf public key).
const PEER_ID_MULTIHASH_PREFIX: [u8; 2] = [0x00, 0x24];

/// What can go wrong with keys, signatures and peer ids.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The signature does not verify for this key and message.
    #[error("bad signature")]
    BadSignature,
    /// 32 bytes that are not a valid (or are a weak, small-order) ed25519 public key.
    #[error("invalid ed25519 public key")]
    InvalidPublicKey,
    /// A peer id or public key string that does not parse.
    #[error("invalid peer id or public key {input:?}: {reason}")]
    InvalidPeerId {
        /// The text that was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A key file that exists but is not a libp2p ed25519 private key.
    #[error("key file {path} is corrupt: {reason}")]
    CorruptKeyFile {
        /// The file.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Reading or writing the key file failed.
    #[error("key file {path}")]
    KeyFileIo {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("operating system randomness unavailable: {0}")]
    Randomness(String),
}

/// Fills an array with bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| CryptoError::Randomness(e.to_string()))?;
    Ok(bytes)
}

/// Fills an array with bytes that must not repeat: nonces, job ids, temporary names. Each
/// 32-byte block is SHA-256 of a per-thread secret seed (from the operating system's CSPRNG,
/// drawn when the thread first asks) and a counter: one system call per thread instead of one
/// per nonce (a job makes six). Keys come from [`random_bytes`].
pub fn unique_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    thread_local! {
        static GENERATOR: std::cell::Cell<Option<([u8; 32], u64)>> = const { std::cell::Cell::new(None) };
    }
    let (seed, mut counter) = match GENERATOR.get() {
        Some(state) => state,
        None => (random_bytes()?, 0),
    };
    let mut bytes = [0u8; N];
    for block in bytes.chunks_mut(32) {
        let mut hash = Sha256::new();
        hash.update(seed);
        hash.update(counter.to_le_bytes());
        counter += 1;
        block.copy_from_slice(&hash.finalize()[..block.len()]);
    }
    GENERATOR.set(Some((seed, counter)));
    Ok(bytes)
}

/// A SHA-256 digest: event hashes, chain links, genesis ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Digest> {
        let bytes = hex::decode(text).ok()?;
        Some(Digest(bytes.try_into().ok()?))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// SHA-256 of data that arrives in pieces, such as a blob streamed from a peer.
#[derive(Clone, Default)]
pub struct IncrementalDigest(Sha256);

impl IncrementalDigest {
    /// Feeds the next piece.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

/// An ed25519 signature (64 bytes, `R || s`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// Slots of [`KEYS`]: far more than the peers a node deals with at once.
const KEY_CACHE_SLOTS: usize = 1024;

/// Recently checked public keys, decompressed: a fixed table of [`KEY_CACHE_SLOTS`] slots, each
/// chosen by the key's first two bytes (keys are uniformly random), a new key replacing the
/// slot's old one. Bounded by construction; a miss only costs the decompression it saves.
struct KeyCache {
    slots: std::sync::Mutex<Vec<Option<VerifyingKey>>>,
}

static KEYS: std::sync::LazyLock<KeyCache> =
    std::sync::LazyLock::new(|| KeyCache { slots: std::sync::Mutex::new(vec![None; KEY_CACHE_SLOTS]) });

impl KeyCache {
    fn slot(bytes: &[u8; PUBLIC_KEY_LEN]) -> usize {
        usize::from(u16::from_le_bytes([bytes[0], bytes[1]])) % KEY_CACHE_SLOTS
    }

    /// The decompressed key, if the bytes are a valid point not of small order.
    fn verifying_key(&self, bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<VerifyingKey, CryptoError> {
        let slot = KeyCache::slot(bytes);
        let cached = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[slot];
        if let Some(key) = cached.filter(|key| key.as_bytes() == bytes) {
            return Ok(key);
        }
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| CryptoError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(CryptoError::InvalidPublicKey);
        }
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[slot] = Some(key);
        Ok(key)
    }
}

/// The canonical encodings of the eight points of small order of edwards25519 (its torsion
/// subgroup): a signature whose `R` is one of them is refused (see [`PublicKey::verify`]).
static SMALL_ORDER_POINTS: std::sync::LazyLock<[[u8; PUBLIC_KEY_LEN]; 8]> = std::sync::LazyLock::new(|| {
    curve25519_dalek::constants::EIGHT_TORSION.map(|point| point.compress().to_bytes())
});

/// An ed25519 public key: an agent, an account, a libp2p peer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Accepts 32 bytes that decode to a valid ed25519 point that is not of small order.
    ///
    /// The point check decompresses the key (a field exponentiation); keys checked recently are
    /// remembered (see [`KeyCache`]), so the same peers' keys in every message cost a lookup.
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Result<PublicKey, CryptoError> {
        KEYS.verifying_key(&bytes)?;
        Ok(PublicKey(bytes))
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The 32 bytes as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Verifies `signature` over `message` with RFC 8032 strict rules (canonical `s`, no
    /// small-order `R` or key), so a signature cannot be altered into a second valid one.
    ///
    /// It accepts exactly what ed25519-dalek's `verify_strict` accepts, one field square root
    /// cheaper: the cofactorless check (canonical `s` required) holds only when `R` is the
    /// encoding of `[s]B − [k]A` as compression makes it — canonical, of a valid point, so `R`
    /// needs no decompression — and such a point is of small order exactly when that encoding
    /// is one of the eight of [`SMALL_ORDER_POINTS`]. Small-order keys are refused when the key
    /// is decoded ([`KeyCache`]).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        let key = KEYS.verifying_key(&self.0)?;
        if SMALL_ORDER_POINTS.iter().any(|point| signature.0[..32] == *point) {
            return Err(CryptoError::BadSignature);
        }
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        ed25519_dalek::Verifier::verify(&key, message, &signature).map_err(|_| CryptoError::BadSignature)
    }

    /// The libp2p peer id of this key.
    pub fn peer_id(&self) -> PeerId {
        PeerId(*self)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.peer_id())
    }
}

/// The libp2p peer id of an ed25519 key, which is also the name of a ledger account.
///
/// Encoding (libp2p peer-id spec): the public key is protobuf-encoded as
/// `PublicKey { Type = 1 (Ed25519), Data = <32 bytes> }`, i.e. `08 01 12 20 || key` (36 bytes);
/// since that is at most 42 bytes it is wrapped in an *identity* multihash, `00 24 || protobuf`
/// (38 bytes), and the text form is base58btc (Bitcoin alphabet) of those bytes — always
/// starting `12D3KooW`. Because the multihash is the identity, the public key can be recovered
/// from the peer id, so a peer id is enough to verify an account's signatures.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(PublicKey);

impl PeerId {
    /// The public key this peer id names.
    pub fn public_key(&self) -> PublicKey {
        self.0
    }

    /// Reads the 38-byte binary form ([`to_bytes`](PeerId::to_bytes)); `None` for anything
    /// else (another key type, a hashed peer id, an invalid key).
    pub fn from_binary(bytes: &[u8]) -> Option<PeerId> {
        let key = bytes
            .strip_prefix(&PEER_ID_MULTIHASH_PREFIX[..])?
            .strip_prefix(&PUBLIC_KEY_PROTOBUF_PREFIX[..])?;
        PublicKey::from_bytes(key.try_into().ok()?).ok().map(|key| key.peer_id())
    }

    /// The 38-byte binary peer id (identity multihash of the protobuf public key).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(38);
        bytes.extend_from_slice(&PEER_ID_MULTIHASH_PREFIX);
        bytes.extend_from_slice(&PUBLIC_KEY_PROTOBUF_PREFIX);
        bytes.extend_from_slice(self.0.as_bytes());
        bytes
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.to_bytes()).into_string())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = CryptoError;

    /// Parses a base58btc peer id, or 64 hex characters of a raw public key.
    fn from_str(input: &str) -> Result<PeerId, CryptoError> {
        let invalid = |reason| CryptoError::InvalidPeerId { input: input.chars().take(80).collect(), reason };
        let key: [u8; 32] = if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            let raw = hex::decode(input).map_err(|_| invalid("not hex"))?;
            raw.try_into().map_err(|_| invalid("not 32 bytes"))?
        } else {
            let raw = bs58::decode(input).into_vec().map_err(|_| invalid("not base58btc"))?;
            let rest = raw
                .strip_prefix(&PEER_ID_MULTIHASH_PREFIX[..])
                .and_then(|r| r.strip_prefix(&PUBLIC_KEY_PROTOBUF_PREFIX[..]))
                .ok_or_else(|| invalid("not an ed25519 peer id (expected 12D3KooW...)"))?;
            rest.try_into().map_err(|_| invalid("wrong length"))?
        };
        let key = PublicKey::from_bytes(key).map_err(|_| invalid("not a valid ed25519 key"))?;
        Ok(key.peer_id())
    }
}

/// An ed25519 signing key: the agent's identity.
pub struct Keypair(SigningKey);

impl Keypair {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Keypair, CryptoError> {
        Ok(Keypair::from_seed(random_bytes()?))
    }

    /// The key for a 32-byte secret seed (deterministic; tests and benchmarks use it).
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair(SigningKey::from_bytes(&seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// The libp2p peer id of this key.
    pub fn peer_id(&self) -> PeerId {
        self.public().peer_id()
    }

    /// Signs `message` (ed25519 is deterministic: the same message gives the same signature).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }

    /// The key in libp2p's protobuf encoding (what the key file holds): hand it to libp2p as
    /// the node's identity. It contains the secret; never log or send it.
    pub fn to_protobuf_encoding(&self) -> Vec<u8> {
        let mut encoded = KEY_FILE_PREFIX.to_vec();
        encoded.extend_from_slice(&self.0.to_keypair_bytes());
        encoded
    }

    /// Loads the key file at `path`, or creates it (mode 0600, parent directories included)
    /// when it does not exist. Returns the key and whether it was created now.
    pub fn load_or_create(path: &Path) -> Result<(Keypair, bool), CryptoError> {
        let io = |source| CryptoError::KeyFileIo { path: path.display().to_string(), source };
        match fs::read(path) {
            Ok(bytes) => Ok((Keypair::from_key_file(path, &bytes)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keypair = Keypair::generate()?;
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io)?;
                }
                let mut file = create_private_file(path).map_err(io)?;
                file.write_all(&keypair.to_protobuf_encoding()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok((keypair, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_key_file(path: &Path, bytes: &[u8]) -> Result<Keypair, CryptoError> {
        let corrupt = |reason| CryptoError::CorruptKeyFile { path: path.display().to_string(), reason };
        let pair: &[u8; 64] = bytes
            .strip_prefix(&KEY_FILE_PREFIX[..])
            .ok_or_else(|| corrupt("not a libp2p ed25519 private key"))?
            .try_into()
            .map_err(|_| corrupt("wrong length"))?;
        let key = SigningKey::from_keypair_bytes(pair)
            .map_err(|_| corrupt("public half does not match the secret"))?;
        Ok(Keypair(key))
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.peer_id())
    }
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    use curve25519_dalek::{EdwardsPoint, Scalar, constants::EIGHT_TORSION};

    fn random_scalar() -> Scalar {
        Scalar::from_bytes_mod_order_wide(&random_bytes::<64>().unwrap())
    }

    /// `k = SHA-512(R ‖ A ‖ M) mod ℓ`, the challenge of an ed25519 signature.
    fn challenge(r: &[u8; 32], key: &[u8; 32], message: &[u8]) -> Scalar {
        let hash = sha2::Sha512::new().chain_update(r).chain_update(key).chain_update(message).finalize();
        Scalar::from_bytes_mod_order_wide(&hash.into())
    }

    fn signature(r: [u8; 32], s: Scalar) -> Signature {
        let mut bytes = [0; SIGNATURE_LEN];
        bytes[..32].copy_from_slice(&r);
        bytes[32..].copy_from_slice(s.as_bytes());
        Signature(bytes)
    }

    fn dalek_verifies(key: &[u8; 32], message: &[u8], signature: &Signature, strict: bool) -> bool {
        let key = VerifyingKey::from_bytes(key).unwrap();
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        if strict {
            key.verify_strict(message, &signature).is_ok()
        } else {
            ed25519_dalek::Verifier::verify(&key, message, &signature).is_ok()
        }
    }

    #[test]
    fn the_small_order_table_holds_the_eight_torsion_points() {
        let table: std::collections::HashSet<[u8; 32]> = SMALL_ORDER_POINTS.iter().copied().collect();
        assert_eq!(table.len(), 8);
        for point in table {
            assert!(VerifyingKey::from_bytes(&point).unwrap().is_weak(), "{}", hex::encode(point));
        }
    }

    /// Signatures the plain RFC 8032 check accepts although their `R` is of small order: with
    /// `R` the identity (any key), and with `R` of order 8 under a key that has a torsion part
    /// (not itself of small order, so it decodes). `verify` refuses both, as `verify_strict`.
    #[test]
    fn a_signature_with_a_small_order_r_is_refused_as_verify_strict_refuses_it() {
        let secret = random_scalar();
        let key = EdwardsPoint::mul_base(&secret).compress().to_bytes();
        let identity = EIGHT_TORSION[0].compress().to_bytes();
        let forged = signature(identity, challenge(&identity, &key, b"pay me") * secret);
        assert!(dalek_verifies(&key, b"pay me", &forged, false));
        assert!(!dalek_verifies(&key, b"pay me", &forged, true));
        assert!(matches!(
            PublicKey::from_bytes(key).unwrap().verify(b"pay me", &forged),
            Err(CryptoError::BadSignature)
        ));

        // A = aB + T (T of order 8): [s]B − [k]A = −[k]T when s = k·a, so R = −[k]T passes the
        // plain check; find a message whose challenge gives the chosen R (1 in 8 do).
        let torsion = EIGHT_TORSION[1];
        let mixed = (EdwardsPoint::mul_base(&secret) + torsion).compress().to_bytes();
        let r = EIGHT_TORSION[3].compress().to_bytes();
        let (message, k) = (0u32..10_000)
            .map(|i| i.to_le_bytes())
            .map(|m| (m, challenge(&r, &mixed, &m)))
            .find(|(_, k)| (-(k * torsion)).compress().to_bytes() == r)
            .expect("one message in eight fits");
        let forged = signature(r, k * secret);
        assert!(dalek_verifies(&mixed, &message, &forged, false));
        assert!(!dalek_verifies(&mixed, &message, &forged, true));
        let key = PublicKey::from_bytes(mixed).expect("a key with a torsion part is not of small order");
        assert!(matches!(key.verify(&message, &forged), Err(CryptoError::BadSignature)));
    }

    #[test]
    fn verify_accepts_and_refuses_what_verify_strict_does() {
        for round in 0..200u32 {
            let keypair = Keypair::generate().unwrap();
            let public = keypair.public();
            let message = round.to_le_bytes().repeat(round as usize % 7 + 1);
            let good = keypair.sign(&message);
            assert!(public.verify(&message, &good).is_ok());
            assert!(dalek_verifies(public.as_bytes(), &message, &good, true));
            let mut bad = good;
            bad.0[round as usize % SIGNATURE_LEN] ^= 1 << (round % 8);
            let strict = dalek_verifies(public.as_bytes(), &message, &bad, true);
            assert_eq!(public.verify(&message, &bad).is_ok(), strict);
            assert!(public.verify(b"another message", &good).is_err());
        }
    }

    #[test]
    fn unique_bytes_do_not_repeat_within_a_thread_or_across_threads() {
        let mine: Vec<[u8; 40]> = (0..1000).map(|_| unique_bytes().unwrap()).collect();
        let theirs: Vec<[u8; 40]> =
            std::thread::spawn(|| (0..1000).map(|_| unique_bytes().unwrap()).collect()).join().unwrap();
        let all: std::collections::HashSet<[u8; 40]> = mine.iter().chain(&theirs).copied().collect();
        assert_eq!(all.len(), 2000);
        // Both blocks of a 40-byte draw are filled, not only the first.
        assert!(mine.iter().all(|b| b[32..] != [0; 8]));
    }

    #[test]
    fn an_incremental_digest_equals_the_one_shot_digest() {
        let mut digest = IncrementalDigest::default();
        digest.update(b"hello ");
        digest.update(b"world");
        assert_eq!(digest.finish(), Digest::of(b"hello world"));
        assert_ne!(IncrementalDigest::default().finish(), Digest::of(b"hello world"));
    }

    /// The ed25519 test vector of the libp2p peer-id spec (`specs/peer-ids/peer-ids.md`): the
    /// private-key protobuf is exactly our key-file format, and the peer id is the one every
    /// libp2p implementation derives from it.
    #[test]
    fn key_file_and_peer_id_match_libp2p_spec_vector() {
        let file = hex::decode(
            "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d\
             1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
        )
        .unwrap();
        let key = Keypair::from_key_file(Path::new("vector"), &file).unwrap();
        assert_eq!(
            hex::encode(key.public().as_bytes()),
            "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
        );
        let id = key.peer_id();
        assert_eq!(id.to_string(), "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq");
        assert_eq!(id.to_string().parse::<PeerId>().unwrap(), id);
        let hex_key = hex::encode(key.public().as_bytes());
        assert_eq!(hex_key.parse::<PeerId>().unwrap(), id);
        assert!("12D3KooWnotapeer".parse::<PeerId>().is_err());
    }

    #[test]
    fn the_key_cache_never_lets_a_bad_key_or_signature_through() {
        // The binary peer id round-trips; a weak key is refused every time (never cached).
        let key = Keypair::from_seed([7; 32]);
        assert_eq!(PeerId::from_binary(&key.peer_id().to_bytes()), Some(key.peer_id()));
        let mut weak = PEER_ID_MULTIHASH_PREFIX.to_vec();
        weak.extend_from_slice(&PUBLIC_KEY_PROTOBUF_PREFIX);
        weak.extend_from_slice(&[0; 32]);
        for _ in 0..2 {
            assert!(PeerId::from_binary(&weak).is_none());
            assert!(PublicKey::from_bytes([0; 32]).is_err());
        }
        assert!(PeerId::from_binary(&weak[1..]).is_none());
        // Two keys sharing a slot replace each other and both verify their own signatures only.
        let first = Keypair::from_seed([0; 32]);
        let slot = |k: &Keypair| KeyCache::slot(k.public().as_bytes());
        let colliding = (0u32..)
            .map(|i| {
                let mut seed = [0; 32];
                seed[..4].copy_from_slice(&i.to_le_bytes());
                seed[31] = 1;
                Keypair::from_seed(seed)
            })
            .find(|k| slot(k) == slot(&first))
            .unwrap();
        let message = b"m";
        for _ in 0..3 {
            for (signer, other) in [(&first, &colliding), (&colliding, &first)] {
                let signature = signer.sign(message);
                assert!(signer.public().verify(message, &signature).is_ok());
                assert!(matches!(other.public().verify(message, &signature), Err(CryptoError::BadSignature)));
            }
        }
    }

    #[test]
    fn key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/identity.key");
        let (a, created) = Keypair::load_or_create(&path).unwrap();
        assert!(created);
        let (b, created) = Keypair::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.public(), b.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn strict_verification_refuses_tampering() {
        let key = Keypair::from_seed([7; 32]);
        let sig = key.sign(b"hello");
        key.public().verify(b"hello", &sig).unwrap();
        assert!(key.public().verify(b"hellp", &sig).is_err());
    }
}
