//! The CUE token ledger: genesis, per-account chains, mint and transfer rules, equivocation
//! proofs. Pure rules — no I/O, no clock; `store/` persists what this decides.
//!
//! Trust model, in short (the whole of it is in `docs/ledger.md`): there is no global consensus.
//! Each node applies the entries it receives, in the order it receives them, to its own view.
//! An account can only spend from its own chain, and a double spend needs two entries at one
//! sequence number, which any node holding both can prove and attribute to the signer.

mod equivocation;
mod escrow;
mod genesis;
mod state;

pub use equivocation::EquivocationProof;
pub use escrow::{OpenLock, claim_amount};
pub use genesis::Genesis;
pub use state::{Account, Applied, Ledger, LockChange};

use crate::crypto::{Digest, PeerId};

/// Most tokens that can exist (2^63 - 1, so amounts fit SQLite and TOML integers).
pub const MAX_SUPPLY: u64 = i64::MAX as u64;

/// Why the ledger refused an entry, a genesis or a proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The entry names another network's genesis.
    #[error("entry is for another network (genesis {found}, this network is {expected})")]
    WrongNetwork {
        /// This network's genesis id.
        expected: Digest,
        /// The entry's.
        found: Digest,
    },
    /// The signer was caught equivocating; its new entries are refused.
    #[error("account {0} is flagged for equivocation; its entries are refused")]
    AccountFlagged(PeerId),
    /// This very entry is already in the chain.
    #[error("replay: entry {seq} of this account is already applied")]
    Duplicate {
        /// Its sequence number.
        seq: u64,
    },
    /// A different entry already holds this chain position: a double spend attempt.
    #[error("equivocation: {account} signed two different entries with sequence {seq}")]
    Equivocation {
        /// The equivocating account.
        account: PeerId,
        /// The contested position.
        seq: u64,
        /// Hash of the entry already in the chain.
        existing: Digest,
    },
    /// The entry skips positions: earlier entries of the signer are missing.
    #[error("out of order: expected sequence {expected}, found {found}")]
    OutOfOrder {
        /// The next position.
        expected: u64,
        /// The entry's position.
        found: u64,
    },
    /// The entry's previous-hash does not match the chain.
    #[error("broken chain: entry {seq} does not link to the previous entry")]
    BrokenChain {
        /// The entry's position.
        seq: u64,
    },
    /// A mint signed by someone other than the mint authority.
    #[error("{0} is not the mint authority of this network")]
    NotMintAuthority(PeerId),
    /// A mint or transfer of nothing.
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// A transfer to oneself.
    #[error("an account cannot transfer to itself")]
    SelfTransfer,
    /// A transfer beyond the payer's balance.
    #[error("insufficient balance: {balance} available, {amount} requested")]
    InsufficientBalance {
        /// The payer's balance.
        balance: u64,
        /// The transfer's amount.
        amount: u64,
    },
    /// Supply would exceed [`MAX_SUPPLY`].
    #[error("total supply would exceed {MAX_SUPPLY}")]
    SupplyOverflow,
    /// A genesis file that does not parse or check.
    #[error("invalid genesis: {0}")]
    InvalidGenesis(String),
    /// An equivocation proof that does not check.
    #[error("invalid equivocation proof: {0}")]
    InvalidProof(String),
    /// A release of a lock this node does not hold open: not received yet, or released before
    /// this node's memory of releases (a restart, or more releases than it keeps).
    #[error("lock {0} is not open here (unknown, or released already)")]
    LockNotOpen(Digest),
    /// A release of a lock released already (`same`: by this very release, a replay).
    #[error("lock {lock} was released already{}", if *same { " (by this release)" } else { "" })]
    AlreadyReleased {
        /// The lock.
        lock: Digest,
        /// Whether the earlier release is this one.
        same: bool,
    },
    /// A release signed by neither the lock's payer nor its payee.
    #[error("only the lock's consumer or provider can release it")]
    NotLockParty,
    /// A release paying more than the lock holds.
    #[error("a release pays {paid}, more than the lock's {amount}")]
    PaidAboveLock {
        /// The release's payment.
        paid: u64,
        /// The lock's amount.
        amount: u64,
    },
    /// A provider's claim made before the contract's payment deadline.
    #[error("a claim at {timestamp_ms} ms comes before the payment deadline {pay_by_ms} ms")]
    ClaimTooEarly {
        /// The claim's timestamp.
        timestamp_ms: u64,
        /// The contract's deadline.
        pay_by_ms: u64,
    },
    /// A claim whose evidence does not show what it claims.
    #[error("invalid claim: {0}")]
    BadClaim(String),
}
