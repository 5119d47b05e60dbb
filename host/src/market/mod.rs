//! The market's pure rules: what a provider offers and at what price. No I/O, no clock:
//! measurements and the time are passed in.
//!
//! The [`ResourceManifest`] is a provider's signed statement of its measured capacity and its
//! prices; [`score`] ranks the providers a consumer discovered. See `docs/market.md`.

mod manifest;
mod score;

pub use manifest::{ManifestError, ProviderPolicy, ResourceManifest, open_manifest};
pub use score::{NEUTRAL_REPUTATION, REFERENCE_JOB_FUEL, score};
