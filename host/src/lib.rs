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
//! | app | [`local`] | running a component on this machine (`cue run`) |
//! | app | [`authoring`] | scaffolding and building job crates (`cue new`, `cue build`) |
//! | util | [`datadir`] | where a node keeps its files |
//!
//! The sandbox is the only importer of wasmtime; nothing above it sees a wasmtime type.

pub mod authoring;
pub mod cli;
pub mod crypto;
pub mod datadir;
pub mod ledger;
pub mod local;
pub mod protocol;
pub mod sandbox;
pub mod store;
