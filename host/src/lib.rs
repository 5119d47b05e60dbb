//! Cue host library: identity, signed events, the event log and the CUE ledger (this branch).

pub mod cli;
pub mod crypto;
pub mod ledger;
pub mod protocol;
pub mod store;
