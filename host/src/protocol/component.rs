//! `COMPONENT_MANIFEST`: a publisher's signed claim that `name@version` is the component with a
//! given SHA-256, and [`ComponentRef`], the ways a user names a component.
//!
//! Body (canonical CBOR, see `docs/market.md`):
//!
//! ```text
//! component = [name: tstr, version: tstr, sha256: bstr .size 32, size: uint,
//!              world: tstr, publisher: bstr .size 32]
//! ```
//!
//! A component manifest is a permanent claim: the bytes it names never change, so it does not
//! stop being true when its envelope expires. It is signed with the longest lifetime
//! ([`MAX_LIFETIME_MS`]) and readers check the signature and that it is not from the future,
//! never its expiry (see [`open_component_manifest`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use semver::{Version, VersionReq};

use super::codec::{Reader, Writer};
use super::{EventBody, EventError, EventKind, MAX_LIFETIME_MS, Signed, Validity};
use crate::crypto::{Digest, Keypair, PeerId, PublicKey};

/// Longest component name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Largest `world` text, in bytes: keeps a manifest well under
/// [`MAX_EVENT_BYTES`](super::MAX_EVENT_BYTES) (the example jobs' worlds are 0.1–5 KiB).
pub const MAX_WORLD_BYTES: usize = 32 * 1024;

/// `COMPONENT_MANIFEST`: what a publisher vouches for when it publishes a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentManifest {
    /// The name, owned by its first publisher's key (see [`check_name`] for the syntax).
    pub name: String,
    /// The version; no two different components may share a name and version. Build metadata
    /// (`+...`) is refused: it does not order versions, so it could not tell two apart.
    pub version: Version,
    /// SHA-256 of the component's bytes: what a consumer fetches and checks.
    pub sha256: Digest,
    /// Size of the component in bytes, so a peer can refuse a blob before downloading it.
    pub size: u64,
    /// The component's WIT world as `cue inspect` prints it, so a consumer can see what it
    /// exports before fetching it. At most [`MAX_WORLD_BYTES`].
    pub world: String,
    /// The publisher; must be the event's signer.
    pub publisher: PublicKey,
}

impl ComponentManifest {
    /// Checks the fields a signature cannot vouch for: the name's syntax, no build metadata, a
    /// non-empty component, a world of 1 to [`MAX_WORLD_BYTES`] bytes.
    pub fn validate(&self) -> Result<(), ComponentError> {
        check_name(&self.name)?;
        if !self.version.build.is_empty() {
            return Err(ComponentError::BuildMetadata { version: self.version.clone() });
        }
        if self.size == 0 {
            return Err(ComponentError::EmptyComponent);
        }
        if self.world.is_empty() || self.world.len() > MAX_WORLD_BYTES {
            return Err(ComponentError::WorldSize { size: self.world.len(), limit: MAX_WORLD_BYTES });
        }
        Ok(())
    }

    /// Validates and signs the manifest with `keypair`, which must be the publisher's, at
    /// `now_ms` with the longest lifetime (the expiry is not checked by readers).
    pub fn sign(self, keypair: &Keypair, now_ms: u64) -> Result<Signed<ComponentManifest>, ComponentError> {
        self.validate()?;
        if self.publisher != keypair.public() {
            return Err(ComponentError::NotThePublisher {
                publisher: self.publisher.peer_id(),
                signer: keypair.peer_id(),
            });
        }
        Ok(Signed::sign(keypair, self, Validity::starting(now_ms, MAX_LIFETIME_MS))?)
    }
}

impl EventBody for ComponentManifest {
    const KIND: EventKind = EventKind::ComponentManifest;

    fn write(&self, w: &mut Writer) {
        w.array(6)
            .text(&self.name)
            .text(&self.version.to_string())
            .bytes(&self.sha256.0)
            .uint(self.size)
            .text(&self.world)
            .bytes(self.publisher.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<ComponentManifest, EventError> {
        r.array(6)?;
        let name = r.text()?.to_owned();
        let version = r.text()?;
        let version = Version::parse(version)
            .map_err(|e| EventError::Malformed(format!("component version {version:?}: {e}")))?;
        Ok(ComponentManifest {
            name,
            version,
            sha256: Digest(r.byte_array()?),
            size: r.uint()?,
            world: r.text()?.to_owned(),
            publisher: PublicKey::from_bytes(r.byte_array()?)
                .map_err(|_| EventError::Malformed("invalid publisher key".into()))?,
        })
    }
}

/// A component name that breaks the naming rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid component name {name:?}: {reason}")]
pub struct NameError {
    /// The name given.
    pub name: String,
    /// The rule it breaks.
    pub reason: &'static str,
}

/// Checks a component name: 1 to [`MAX_NAME_LEN`] characters of `a-z`, `0-9` and `-`,
/// starting with a letter, without a trailing `-` or a `--`.
///
/// ```
/// use cue_host::protocol::check_name;
///
/// assert!(check_name("fib").is_ok());
/// assert!(check_name("word-count2").is_ok());
/// assert!(check_name("Fib").is_err());
/// assert!(check_name("2fast").is_err());
/// ```
pub fn check_name(name: &str) -> Result<(), NameError> {
    let reason = if name.is_empty() || name.len() > MAX_NAME_LEN {
        "must be 1 to 64 characters"
    } else if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        "may contain only a-z, 0-9 and '-'"
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        "must start with a letter"
    } else if name.ends_with('-') {
        "must not end with '-'"
    } else if name.contains("--") {
        "must not contain '--'"
    } else {
        return Ok(());
    };
    Err(NameError { name: name.to_owned(), reason })
}

/// Why a component manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentError {
    /// The envelope was refused: malformed, another kind, forged, from the future.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Signed by one key on behalf of another publisher.
    #[error("the component manifest names publisher {publisher} but was signed by {signer}")]
    NotThePublisher {
        /// The publisher in the body.
        publisher: PeerId,
        /// The signer in the header.
        signer: PeerId,
    },
    /// The name breaks the naming rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The version carries build metadata.
    #[error("version {version} has build metadata, which component versions may not carry")]
    BuildMetadata {
        /// The version given.
        version: Version,
    },
    /// A size of zero bytes: no component is empty.
    #[error("a component cannot be empty")]
    EmptyComponent,
    /// The world text is empty or longer than [`MAX_WORLD_BYTES`].
    #[error("the world text has {size} bytes; it must have 1 to {limit}")]
    WorldSize {
        /// Bytes given.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Checks a decoded component manifest without a clock: signature good, signed by the
/// publisher it names, fields valid. What a store re-checks before it keeps one.
pub fn verify_component_manifest(signed: &Signed<ComponentManifest>) -> Result<(), ComponentError> {
    signed.verify_signature()?;
    let signer = signed.header().signer;
    if signed.body().publisher != signer {
        return Err(ComponentError::NotThePublisher {
            publisher: signed.body().publisher.peer_id(),
            signer: signer.peer_id(),
        });
    }
    signed.body().validate()
}

/// Decodes and checks a component manifest at `now_ms`: canonical, of this kind, signature
/// good, signed by the publisher it names, fields valid, and not from the future.
///
/// The expiry is deliberately not checked: the claim is about immutable bytes and stays true,
/// and a consumer must still be able to check a years-old manifest it resolves a name with.
/// Nothing is replayable either — seeing it again adds nothing — so no nonce is recorded.
///
/// ```
/// use cue_host::crypto::{Digest, Keypair};
/// use cue_host::protocol::{ComponentManifest, MAX_LIFETIME_MS, open_component_manifest};
///
/// let key = Keypair::from_seed([1; 32]);
/// let manifest = ComponentManifest {
///     name: "fib".into(),
///     version: "1.2.0".parse().unwrap(),
///     sha256: Digest::of(b"the component"),
///     size: 13,
///     world: "world fib { export fib: func(n: u32) -> u64; }".into(),
///     publisher: key.public(),
/// };
/// let now = 1_800_000_000_000;
/// let signed = manifest.clone().sign(&key, now).unwrap();
/// assert_eq!(open_component_manifest(signed.bytes(), now).unwrap().body(), &manifest);
/// let next_year = now + 365 * 24 * 3_600_000;
/// assert!(next_year > now + MAX_LIFETIME_MS);
/// assert!(open_component_manifest(signed.bytes(), next_year).is_ok(), "never expires");
/// ```
pub fn open_component_manifest(
    bytes: &[u8],
    now_ms: u64,
) -> Result<Signed<ComponentManifest>, ComponentError> {
    let signed = Signed::<ComponentManifest>::decode(bytes)?;
    verify_component_manifest(&signed)?;
    signed.verify_issued(now_ms)?;
    Ok(signed)
}

/// How a user names a component: a published name and acceptable versions, exact bytes by
/// hash, or a file.
///
/// Parsed from text ([`FromStr`]), in this order:
/// - `sha256:<64 hex>`: [`ComponentRef::Hash`];
/// - anything containing `/` or ending in `.wasm`: [`ComponentRef::File`] (write `./fib` for
///   a file that would otherwise read as a name);
/// - `name@<req>`: [`ComponentRef::Named`], `req` a Cargo-style semver requirement
///   (`fib@^1.2`, `fib@1.2` which means `^1.2`, `fib@=1.2.3`, `fib@>=1.0, <3`);
/// - a bare `name`: any version (`*`).
///
/// Parsing does no I/O; [`Display`](fmt::Display) writes what parses back to the same value.
///
/// ```
/// use cue_host::protocol::ComponentRef;
///
/// let named: ComponentRef = "fib@^1.2".parse().unwrap();
/// assert!(matches!(&named, ComponentRef::Named { name, .. } if name == "fib"));
/// assert_eq!(named.to_string(), "fib@^1.2");
/// assert!(matches!("./fib.wasm".parse(), Ok(ComponentRef::File(_))));
/// assert!("fib@not-a-version".parse::<ComponentRef>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentRef {
    /// The highest published version of `name` that `req` accepts.
    Named {
        /// The component name.
        name: String,
        /// The acceptable versions; `*` for a bare name.
        req: VersionReq,
    },
    /// Exactly the component with this SHA-256.
    Hash(Digest),
    /// A component file on this machine.
    File(PathBuf),
}

/// Why a component reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// Nothing was given.
    #[error("empty component reference")]
    Empty,
    /// `sha256:` not followed by 64 hex characters.
    #[error("`sha256:` must be followed by 64 hex characters, found {input:?}")]
    BadHash {
        /// What followed `sha256:`.
        input: String,
    },
    /// The name part is not a valid name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The part after `@` is not a semver requirement.
    #[error("invalid version requirement {input:?} (try ^1.2, =1.2.3 or >=1.0, <2): {reason}")]
    BadVersionReq {
        /// The text after `@`.
        input: String,
        /// What semver said.
        reason: String,
    },
}

impl FromStr for ComponentRef {
    type Err = RefError;

    fn from_str(text: &str) -> Result<ComponentRef, RefError> {
        if text.is_empty() {
            return Err(RefError::Empty);
        }
        if let Some(hex) = text.strip_prefix("sha256:") {
            return Digest::from_hex(hex)
                .map(ComponentRef::Hash)
                .ok_or_else(|| RefError::BadHash { input: hex.to_owned() });
        }
        if text.contains('/') || text.contains(std::path::MAIN_SEPARATOR) || text.ends_with(".wasm") {
            return Ok(ComponentRef::File(PathBuf::from(text)));
        }
        let (name, req) = match text.split_once('@') {
            Some((name, req)) => (name, parse_req(req)?),
            None => (text, VersionReq::STAR),
        };
        check_name(name)?;
        Ok(ComponentRef::Named { name: name.to_owned(), req })
    }
}

fn parse_req(text: &str) -> Result<VersionReq, RefError> {
    VersionReq::parse(text)
        .map_err(|e| RefError::BadVersionReq { input: text.to_owned(), reason: e.to_string() })
}

impl fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentRef::Named { name, req } if *req == VersionReq::STAR => f.write_str(name),
            ComponentRef::Named { name, req } => write!(f, "{name}@{req}"),
            ComponentRef::Hash(digest) => write!(f, "sha256:{digest}"),
            ComponentRef::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ChainLink, Event, MAX_CLOCK_SKEW_MS, MAX_EVENT_BYTES, Transfer};

    const NOW: u64 = 1_800_000_000_000;

    fn manifest(publisher: PublicKey) -> ComponentManifest {
        ComponentManifest {
            name: "fib".into(),
            version: Version::new(1, 2, 3),
            sha256: Digest::of(b"fib component"),
            size: 13_824,
            world: "package root:component;\n\nworld root {\n  export fib: func(n: u32) -> u64;\n}\n".into(),
            publisher,
        }
    }

    /// Signs without [`ComponentManifest::sign`]'s checks, as a hostile peer could.
    fn sign_raw(key: &Keypair, body: ComponentManifest) -> Signed<ComponentManifest> {
        Signed::sign(key, body, Validity::starting(NOW, MAX_LIFETIME_MS)).unwrap()
    }

    #[test]
    fn round_trips_canonically() {
        let key = Keypair::from_seed([3; 32]);
        let event = manifest(key.public()).sign(&key, NOW).unwrap();
        assert_eq!(Signed::<ComponentManifest>::decode(event.bytes()).unwrap(), event);
        assert_eq!(open_component_manifest(event.bytes(), NOW).unwrap().body(), &manifest(key.public()));
        assert_eq!(event.header().kind.tag(), "cue/component-manifest");
        assert_eq!(event.header().expires_ms - event.header().timestamp_ms, MAX_LIFETIME_MS);
    }

    #[test]
    fn a_forged_signature_is_refused() {
        let key = Keypair::from_seed([3; 32]);
        let mut bytes = manifest(key.public()).sign(&key, NOW).unwrap().bytes().to_vec();
        *bytes.last_mut().unwrap() ^= 1;
        assert_eq!(
            open_component_manifest(&bytes, NOW),
            Err(ComponentError::Event(EventError::BadSignature))
        );
    }

    #[test]
    fn an_old_manifest_is_accepted_but_one_from_the_future_is_not() {
        let key = Keypair::from_seed([3; 32]);
        let event = manifest(key.public()).sign(&key, NOW).unwrap();
        assert!(open_component_manifest(event.bytes(), NOW + 100 * MAX_LIFETIME_MS).is_ok());
        assert!(matches!(
            open_component_manifest(event.bytes(), NOW - MAX_CLOCK_SKEW_MS - 1),
            Err(ComponentError::Event(EventError::FromTheFuture { .. }))
        ));
        let endless = Validity { timestamp_ms: NOW, expires_ms: u64::MAX };
        let endless = Signed::sign(&key, manifest(key.public()), endless).unwrap();
        assert!(matches!(
            open_component_manifest(endless.bytes(), NOW),
            Err(ComponentError::Event(EventError::BadLifetime { .. }))
        ));
    }

    #[test]
    fn a_manifest_signed_for_another_publisher_is_refused() {
        let key = Keypair::from_seed([3; 32]);
        let other = Keypair::from_seed([4; 32]).public();
        let event = sign_raw(&key, manifest(other));
        assert!(matches!(
            open_component_manifest(event.bytes(), NOW),
            Err(ComponentError::NotThePublisher { .. })
        ));
        assert!(matches!(manifest(other).sign(&key, NOW), Err(ComponentError::NotThePublisher { .. })));
    }

    #[test]
    fn invalid_fields_are_refused_when_signing_and_when_opening() {
        let key = Keypair::from_seed([3; 32]);
        type Case = (fn(&mut ComponentManifest), fn(&ComponentError) -> bool);
        let cases: [Case; 5] = [
            (|m| m.name = "Fib".into(), |e| matches!(e, ComponentError::Name(_))),
            (
                |m| m.version = "1.0.0+linux".parse().unwrap(),
                |e| matches!(e, ComponentError::BuildMetadata { .. }),
            ),
            (|m| m.size = 0, |e| *e == ComponentError::EmptyComponent),
            (|m| m.world.clear(), |e| matches!(e, ComponentError::WorldSize { size: 0, .. })),
            (
                |m| m.world = "x".repeat(MAX_WORLD_BYTES + 1),
                |e| matches!(e, ComponentError::WorldSize { .. }),
            ),
        ];
        for (spoil, expected) in cases {
            let mut body = manifest(key.public());
            spoil(&mut body);
            let refused = body.clone().sign(&key, NOW).unwrap_err();
            assert!(expected(&refused), "signing: {refused:?}");
            let refused = open_component_manifest(sign_raw(&key, body).bytes(), NOW).unwrap_err();
            assert!(expected(&refused), "opening: {refused:?}");
        }
    }

    #[test]
    fn the_largest_manifest_fits_in_an_event() {
        let key = Keypair::from_seed([3; 32]);
        let mut body = manifest(key.public());
        body.name = format!("a{}", "b".repeat(MAX_NAME_LEN - 1));
        body.world = "w".repeat(MAX_WORLD_BYTES);
        body.version = "18446744073709551615.0.0-rc.1.very.long.prerelease".parse().unwrap();
        let event = body.sign(&key, NOW).unwrap();
        assert!(event.bytes().len() < MAX_EVENT_BYTES);
        open_component_manifest(event.bytes(), NOW).unwrap();
    }

    #[test]
    fn the_ledger_refuses_it_and_other_kinds_do_not_pass_as_it() {
        let key = Keypair::from_seed([3; 32]);
        let event = manifest(key.public()).sign(&key, NOW).unwrap();
        assert_eq!(
            Event::decode(event.bytes()),
            Err(EventError::UnsupportedKind(EventKind::ComponentManifest))
        );
        let transfer = Transfer {
            genesis: Digest([1; 32]),
            link: ChainLink::FIRST,
            to: key.public(),
            amount: 5,
            reference: None,
        };
        let transfer = Signed::sign(&key, transfer, Validity::starting(NOW, 60_000)).unwrap();
        assert!(matches!(
            open_component_manifest(transfer.bytes(), NOW),
            Err(ComponentError::Event(EventError::WrongDomain {
                expected: EventKind::ComponentManifest,
                found: EventKind::TokenTransfer
            }))
        ));
    }

    #[test]
    fn names_follow_the_rules() {
        for good in ["a", "fib", "word-count", "x86-64", &"a".repeat(MAX_NAME_LEN)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        let bad = [
            ("", "must be 1 to 64 characters"),
            (&"a".repeat(MAX_NAME_LEN + 1), "must be 1 to 64 characters"),
            ("Fib", "may contain only a-z, 0-9 and '-'"),
            ("fib_2", "may contain only a-z, 0-9 and '-'"),
            ("fïb", "may contain only a-z, 0-9 and '-'"),
            ("2fib", "must start with a letter"),
            ("-fib", "must start with a letter"),
            ("fib-", "must not end with '-'"),
            ("fib--2", "must not contain '--'"),
        ];
        for (name, reason) in bad {
            assert_eq!(check_name(name), Err(NameError { name: name.to_owned(), reason }));
        }
    }

    #[test]
    fn references_parse_by_their_shape() {
        let hex = "ab".repeat(32);
        let named = |name: &str, req: &str| ComponentRef::Named {
            name: name.into(),
            req: VersionReq::parse(req).unwrap(),
        };
        let cases = [
            ("fib@^1.2".to_owned(), named("fib", "^1.2")),
            ("fib@1.2".to_owned(), named("fib", "^1.2")),
            ("fib@=1.2.3".to_owned(), named("fib", "=1.2.3")),
            ("fib@>=1.0, <3".to_owned(), named("fib", ">=1.0, <3")),
            ("fib".to_owned(), named("fib", "*")),
            (format!("sha256:{hex}"), ComponentRef::Hash(Digest([0xab; 32]))),
            ("fib.wasm".to_owned(), ComponentRef::File("fib.wasm".into())),
            ("./fib".to_owned(), ComponentRef::File("./fib".into())),
            ("guests/fib@2.wasm".to_owned(), ComponentRef::File("guests/fib@2.wasm".into())),
        ];
        for (text, expected) in cases {
            let parsed: ComponentRef = text.parse().unwrap();
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.to_string().parse::<ComponentRef>().unwrap(), parsed, "{text} round-trips");
        }
        assert_eq!(named("fib", "*").to_string(), "fib");
        assert_eq!(named("fib", "^1.2").to_string(), "fib@^1.2");
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        assert_eq!("".parse::<ComponentRef>(), Err(RefError::Empty));
        assert_eq!("sha256:abc".parse::<ComponentRef>(), Err(RefError::BadHash { input: "abc".into() }));
        assert!(matches!("Fib@1".parse::<ComponentRef>(), Err(RefError::Name(_))));
        assert!(matches!("@1".parse::<ComponentRef>(), Err(RefError::Name(_))));
        assert!(matches!("fib@".parse::<ComponentRef>(), Err(RefError::BadVersionReq { .. })));
        assert!(matches!("fib@one".parse::<ComponentRef>(), Err(RefError::BadVersionReq { .. })));
        assert!(matches!("my_job".parse::<ComponentRef>(), Err(RefError::Name(_))));
    }
}
