//! Job authoring on this machine: scaffolding a job crate that uses the guest SDK
//! ([`scaffold`], behind `cue new`) and building one into a component ([`build`], behind
//! `cue build`). Both run the author's own toolchain (`cargo`, `rustup`); nothing here runs
//! a component.

mod build;
mod error;
mod scaffold;

pub use build::{BuiltComponent, WASM_TARGET, build};
pub use error::AuthoringError;
pub use scaffold::{NewJob, Scaffolded, default_sdk_path, scaffold};
