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
//! | edge | [`api`] | the local HTTP control API: axum server, ureq client, bearer token |
//! | root | [`node`] | composition root: identity, stores, sandbox, network, tasks, shutdown; publish, fetch, discovery, the contract state machines, ledger gossip |
//! | core | [`net`] | libp2p: transports, DHT, `/cue-rpc`, streams, gossipsub; client + event loop |
//! | core | [`sandbox`] | wasmtime: verification, limits, metering, typed invocation |
//! | core | [`store`] | SQLite: event log and ledger (one writer), component registry; blob files |
//! | rules | [`ledger`] | pure ledger rules: balances, chains, equivocation proofs |
//! | rules | [`protocol`] | signed envelope, canonical encoding, event kinds, component manifests |
//! | rules | [`market`] | pure market rules: the signed resource manifest, provider score, reputation |
//! | rules | [`contract`] | pure contract rules: provider evaluation, accept and receipt checks, replica majority |
//! | base | [`crypto`] | keys, signatures, peer ids |
//! | base | [`clock`] | the wall clock (`now_ms`), read by the layers above the rules |
//! | app | [`local`] | running a component on this machine (`cue run`) |
//! | app | [`benchmark`] | measuring this machine and signing its manifest (`cue benchmark`) |
//! | app | [`authoring`] | scaffolding and building job crates (`cue new`, `cue build`) |
//! | util | [`datadir`] | where a node keeps its files |
//! | util | [`logfeed`] | the process's log, kept and broadcast for the dashboard (a `tracing` layer) |
//! | test | [`fuzzing`] | the fuzz targets' checks of every decoder of peer input, shared with their replay test |
//! | test | [`hostile`] | a hostile peer for chaos runs (`cue debug hostile`, hidden): request floods, forged gossip, stalled streams |
//!
//! The sandbox is the only importer of wasmtime, the store of rusqlite, crypto of
//! ed25519-dalek, benchmark of wat, net of libp2p, api of axum and ureq; nothing above them
//! sees their types (net re-exports `Multiaddr` and the stream type, which the node passes
//! through).

pub mod api;
pub mod authoring;
pub mod benchmark;
pub mod cli;
pub mod clock;
pub mod contract;
pub mod crypto;
pub mod datadir;
pub mod fuzzing;
pub mod hostile;
pub mod ledger;
pub mod local;
pub mod logfeed;
pub mod market;
pub mod net;
pub mod node;
pub mod protocol;
pub mod sandbox;
pub mod store;
