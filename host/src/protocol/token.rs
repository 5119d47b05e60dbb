//! The ledger's event bodies: `TOKEN_MINT` and `TOKEN_TRANSFER` (the escrow's are in
//! `escrow.rs`).
//!
//! Amounts are integers in the smallest unit of CUE; there are no floats in money.

use super::codec::{Reader, Writer};
use super::envelope::EventBody;
use super::{EventError, EventKind};
use crate::crypto::{Digest, PublicKey};

/// Where an entry sits in its signer's chain of outgoing entries.
///
/// The first entry of an account has `seq` 0 and no `prev`; entry `n + 1` names the hash of
/// entry `n`. Two different entries with the same signer and `seq` are an equivocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainLink {
    /// Position in the signer's chain, from 0.
    pub seq: u64,
    /// Hash of the signer's previous entry; `None` exactly when `seq` is 0.
    pub prev: Option<Digest>,
}

impl ChainLink {
    /// The first position of a chain.
    pub const FIRST: ChainLink = ChainLink { seq: 0, prev: None };

    pub(super) fn write(&self, w: &mut Writer) {
        w.uint(self.seq);
        match &self.prev {
            Some(prev) => w.bytes(&prev.0),
            None => w.null(),
        };
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<ChainLink, EventError> {
        let seq = r.uint()?;
        let prev = r.optional(|r| r.byte_array().map(Digest))?;
        if (seq == 0) != prev.is_none() {
            return Err(EventError::Malformed(
                "a chain link has a previous hash exactly when its sequence is not 0".into(),
            ));
        }
        Ok(ChainLink { seq, prev })
    }
}

/// What a transfer pays for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaymentReference {
    /// A contract (the hash of its `COMPUTE_ACCEPT` event; the job/contract id).
    Contract(Digest),
    /// A receipt (the hash of its `RECEIPT` event).
    Receipt(Digest),
}

/// Why a text is not a payment reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reference {text:?}: {why} (expected contract:<hash> or receipt:<hash>)")]
pub struct ReferenceParseError {
    text: String,
    why: &'static str,
}

/// `contract:<hex hash>` or `receipt:<hex hash>`, as `cue wallet transfer --reference` and the
/// API take it.
impl std::str::FromStr for PaymentReference {
    type Err = ReferenceParseError;

    fn from_str(text: &str) -> Result<PaymentReference, ReferenceParseError> {
        let invalid = |why| ReferenceParseError { text: text.to_owned(), why };
        let (kind, hash) = text.split_once(':').ok_or_else(|| invalid("no kind"))?;
        let hash = Digest::from_hex(hash).ok_or_else(|| invalid("the hash must be 64 hex characters"))?;
        match kind {
            "contract" => Ok(PaymentReference::Contract(hash)),
            "receipt" => Ok(PaymentReference::Receipt(hash)),
            _ => Err(invalid("the kind must be contract or receipt")),
        }
    }
}

impl PaymentReference {
    /// The referenced event hash.
    pub fn target(&self) -> Digest {
        match self {
            PaymentReference::Contract(d) | PaymentReference::Receipt(d) => *d,
        }
    }

    fn write(&self, w: &mut Writer) {
        let (code, target) = match self {
            PaymentReference::Contract(d) => (0, d),
            PaymentReference::Receipt(d) => (1, d),
        };
        w.array(2).uint(code).bytes(&target.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<PaymentReference, EventError> {
        r.array(2)?;
        let code = r.uint()?;
        let target = Digest(r.byte_array()?);
        match code {
            0 => Ok(PaymentReference::Contract(target)),
            1 => Ok(PaymentReference::Receipt(target)),
            other => Err(EventError::Malformed(format!("unknown payment reference type {other}"))),
        }
    }
}

/// `TOKEN_MINT`: the mint authority creates `amount` tokens in `to`'s account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mint {
    /// The network (its genesis id) this entry belongs to; stops cross-network replay.
    pub genesis: Digest,
    /// Position in the authority's chain.
    pub link: ChainLink,
    /// The credited account.
    pub to: PublicKey,
    /// Tokens created, > 0.
    pub amount: u64,
}

impl EventBody for Mint {
    const KIND: EventKind = EventKind::TokenMint;

    fn write(&self, w: &mut Writer) {
        w.array(5).bytes(&self.genesis.0);
        self.link.write(w);
        w.bytes(self.to.as_bytes()).uint(self.amount);
    }

    fn read(r: &mut Reader<'_>) -> Result<Mint, EventError> {
        r.array(5)?;
        Ok(Mint {
            genesis: Digest(r.byte_array()?),
            link: ChainLink::read(r)?,
            to: read_account(r)?,
            amount: r.uint()?,
        })
    }
}

/// `TOKEN_TRANSFER`: the signer pays `amount` tokens to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The network (its genesis id) this entry belongs to; stops cross-network replay.
    pub genesis: Digest,
    /// Position in the payer's chain.
    pub link: ChainLink,
    /// The payee.
    pub to: PublicKey,
    /// Tokens paid, > 0.
    pub amount: u64,
    /// The contract or receipt paid for, if any.
    pub reference: Option<PaymentReference>,
}

impl EventBody for Transfer {
    const KIND: EventKind = EventKind::TokenTransfer;

    fn write(&self, w: &mut Writer) {
        w.array(6).bytes(&self.genesis.0);
        self.link.write(w);
        w.bytes(self.to.as_bytes()).uint(self.amount);
        match &self.reference {
            Some(reference) => reference.write(w),
            None => {
                w.null();
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Transfer, EventError> {
        r.array(6)?;
        Ok(Transfer {
            genesis: Digest(r.byte_array()?),
            link: ChainLink::read(r)?,
            to: read_account(r)?,
            amount: r.uint()?,
            reference: r.optional(PaymentReference::read)?,
        })
    }
}

pub(super) fn read_account(r: &mut Reader<'_>) -> Result<PublicKey, EventError> {
    PublicKey::from_bytes(r.byte_array()?).map_err(|_| EventError::Malformed("invalid account key".into()))
}
