//! Cue's integration tests: one binary, one module per area. Every test gets its own temp
//! dir and talks to real parts: the real wasmtime sandbox, the real `cue` binary.
//!
//! The example guests must be built first (`cargo xtask guests`; `cargo xtask test` does it).

mod support;

mod authoring;
mod benchmark;
mod browser;
mod cli_run;
mod contracts;
mod contracts_in_process;
mod dashboard;
mod dashboard_browser;
mod dishonest;
#[path = "../../fuzz/float_modules.rs"]
mod float_modules;
mod floats;
mod funded;
mod funds;
mod fuzz_corpus;
mod js;
mod js_conformance;
mod js_network;
mod ledger;
mod ledger_crash;
mod ledger_props;
mod money_crash;
mod network;
mod network_hostile;
mod reputation;
mod sandbox;
mod sdk;
mod strangers;
mod unroll;
