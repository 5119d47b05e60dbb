//! The market's pure rules: what a provider offers and at what price. No I/O, no clock:
//! measurements and the time are passed in.
//!
//! Today this is the [`ResourceManifest`], a provider's signed statement of its measured
//! capacity and its prices; see `docs/market.md`.

mod manifest;

pub use manifest::{ManifestError, ProviderPolicy, ResourceManifest, open_manifest};
