//! The market's pure rules: what a provider offers, at what price, and whom to trust. No I/O,
//! no clock: measurements and the time are passed in.
//!
//! The [`ResourceManifest`] is a provider's signed statement of its measured capacity and its
//! prices; [`score`] ranks the providers a consumer discovered; a [`ReputationBook`] turns
//! contract outcomes ([`Attestation`]s, own and gossiped) and equivocation proofs into each
//! peer's reputation, which the score multiplies and a provider's [`ReputationPolicy`] checks.
//! See `docs/market.md`.

mod manifest;
mod reputation;
mod score;

pub use manifest::{ManifestError, NO_NETWORK, ProviderPolicy, ResourceManifest, open_manifest};
pub use reputation::{Attestation, Recorded, ReputationBook, ReputationLimits, ReputationPolicy};
pub use score::{
    MIN_OBSERVED_FUEL, NEUTRAL_REPUTATION, OVERCLAIM, Observed, REFERENCE_JOB_FUEL, score, score_observed,
};
