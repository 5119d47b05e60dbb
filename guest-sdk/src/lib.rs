//! The Cue guest SDK: write Cue jobs in Rust and compile them to WIT-typed components.
//!
//! This first version gives jobs the `cue:job/host` interface (logging, progress,
//! deterministic randomness) as plain Rust functions, and re-exports the `wit-bindgen` it
//! was built with so WIT-first jobs use the same version:
//!
//! ```ignore
//! cue_sdk::log(cue_sdk::Level::Info, "starting");
//! cue_sdk::progress(1, 10);
//! let dice = cue_sdk::random_u64() % 6 + 1;
//! ```

wit_bindgen::generate!({ world: "cue:job/job", path: "../wit" });

pub use cue::job::host::{Level, log, progress, random_u64};
pub use wit_bindgen;
