//! Cue: a peer-to-peer market for verifiable WebAssembly compute.
//!
//! # Architecture
//!
//! A library with a thin binary (`cue`), layered so that each outside crate lives in
//! exactly one module and a module imports only from the layers below it:
//!
//! | layer | module | owns |
//! |---|---|---|
//! | edge | [`cli`] | argument parsing, printing; one file per subcommand |
//! | core | [`sandbox`] | wasmtime: verification, limits, metering, typed invocation |
//! | core | [`store`] | SQLite: event log and ledger (one writer), component registry; blob files |
//! | rules | [`ledger`] | pure ledger rules: balances, chains, equivocation proofs |
//! | rules | [`protocol`] | signed envelope, canonical encoding, event kinds, component manifests |
//! | rules | [`market`] | pure market rules: the signed resource manifest, provider score, reputation |
//! | base | [`crypto`] | keys, signatures, peer ids |
//! | app | [`local`] | running a component on this machine (`cue run`) |
//! | app | [`benchmark`] | measuring this machine and signing its manifest (`cue benchmark`) |
//! | app | [`authoring`] | scaffolding and building job crates (`cue new`, `cue build`) |
//! | util | [`datadir`] | where a node keeps its files |
//!
//! The sandbox is the only importer of wasmtime, the store of rusqlite, crypto of
//! ed25519-dalek, benchmark of wat; nothing above them sees their types.

pub mod api;
pub mod authoring;
pub mod benchmark;
pub mod cli;
pub mod contract;
pub mod crypto;
pub mod datadir;
pub mod ledger;
pub mod local;
pub mod market;
pub mod net;
pub mod node;
pub mod protocol;
pub mod sandbox;
pub mod store;
