//! Equivocation proofs: two different signed entries from one account at one chain position.

use super::LedgerError;
use crate::crypto::{Digest, PublicKey};
use crate::protocol::codec::{Reader, Writer};
use crate::protocol::{Event, EventError};

const PROOF_TAG: &str = "cue-equivocation/1";

/// Self-contained evidence that an account signed two different entries with the same
/// sequence number: anyone can check it with nothing but the two events (see
/// [`EquivocationProof::decode`]), and it cannot be made without the account's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EquivocationProof {
    /// The entry with the smaller hash.
    first: Event,
    /// The entry with the larger hash.
    second: Event,
}

impl EquivocationProof {
    /// Builds a proof from two events, checking that they really are an equivocation.
    pub fn new(a: Event, b: Event) -> Result<EquivocationProof, LedgerError> {
        let invalid = |reason: &str| LedgerError::InvalidProof(reason.into());
        let (first, second) = if a.hash() <= b.hash() { (a, b) } else { (b, a) };
        if first.hash() == second.hash() {
            return Err(invalid("the two entries are the same event"));
        }
        if first.signer() != second.signer() {
            return Err(invalid("the entries have different signers"));
        }
        let (Some(x), Some(y)) = (first.entry(), second.entry()) else {
            return Err(invalid("a release is no chain entry: it cannot equivocate"));
        };
        if x.link.seq != y.link.seq {
            return Err(invalid("the entries have different sequence numbers"));
        }
        if x.genesis != y.genesis {
            return Err(invalid("the entries belong to different networks"));
        }
        let check = |e: &Event| {
            e.clone()
                .verify()
                .map_err(|err| LedgerError::InvalidProof(format!("an entry does not verify: {err}")))
        };
        check(&first)?;
        check(&second)?;
        Ok(EquivocationProof { first, second })
    }

    /// The account that equivocated.
    pub fn account(&self) -> PublicKey {
        self.first.signer()
    }

    /// The contested chain position.
    pub fn seq(&self) -> u64 {
        self.first.seq().expect("a proof holds chain entries")
    }

    /// The network both entries are for.
    pub fn genesis(&self) -> Digest {
        self.first.genesis()
    }

    /// The two entries (smaller hash first).
    pub fn entries(&self) -> (&Event, &Event) {
        (&self.first, &self.second)
    }

    /// Canonical CBOR `["cue-equivocation/1", first event bytes, second event bytes]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.array(3).text(PROOF_TAG).bytes(self.first.bytes()).bytes(self.second.bytes());
        w.into_bytes()
    }

    /// Decodes and fully re-verifies a proof.
    pub fn decode(bytes: &[u8]) -> Result<EquivocationProof, LedgerError> {
        let mut r = Reader::new(bytes);
        let parse = |e: EventError| LedgerError::InvalidProof(e.to_string());
        r.array(3).map_err(parse)?;
        if r.text().map_err(parse)? != PROOF_TAG {
            return Err(LedgerError::InvalidProof("not an equivocation proof".into()));
        }
        let a = Event::decode(r.bytes().map_err(parse)?).map_err(parse)?;
        let b = Event::decode(r.bytes().map_err(parse)?).map_err(parse)?;
        r.finish().map_err(parse)?;
        let proof = EquivocationProof::new(a, b)?;
        if proof.encode() != bytes {
            return Err(LedgerError::InvalidProof("not canonically encoded".into()));
        }
        Ok(proof)
    }
}
