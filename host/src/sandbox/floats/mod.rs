//! Deterministic floats at native speed: a rewriting pass over each core module of a
//! component that canonicalises NaNs only where their bits can be observed, instead of after
//! every float operation (Cranelift's engine-wide `nan_canonicalization`).
//!
//! The result is bit for bit what the engine-wide setting gives, on every machine, with the
//! same fuel; the argument is in docs/sandbox.md ("Determinism"), the differential checks in
//! [`differential`]. Sections other than code are copied unchanged; each function body gets
//! the canonicalisations [`function`]'s analysis asks for, and a few scratch locals.
//!
//! Fuel: the sequences the pass inserts use a handful of operator kinds
//! ([`PASS_OPERATORS`]); the sandbox's engine charges those nothing ([`operator_cost`]), and
//! the pass follows each one the guest itself wrote with `i32.const 0; drop` (1 fuel, no
//! effect, no machine code). So a job pays exactly what it paid under the engine-wide setting.

mod emit;
mod function;
mod webs;

use wasmtime::OperatorCost;

use super::rewrite;

/// The pass's version: part of the engine fingerprint and of the compiled-code cache key, so
/// code rewritten by different versions never mixes. Bump it with any change to its output.
pub const PASS_VERSION: u32 = 2;

/// The operator kinds the pass's own sequences use (free on the sandbox's engine).
pub const PASS_OPERATORS: &str = "local.get local.tee f32.const f64.const v128.const f32.ge f64.ge f32x4.eq f64x2.eq select(typed) v128.bitselect";

/// How the sandbox makes NaN bits deterministic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NanCanonicalization {
    /// This module's pass: canonicalise where a NaN's bits can be observed.
    #[default]
    AtObservation,
    /// Cranelift's engine-wide setting: canonicalise the result of every float operation
    /// (slower; kept as the reference the pass is checked against).
    EveryOperation,
}

impl NanCanonicalization {
    /// Its name in the engine fingerprint.
    pub fn name(self) -> String {
        match self {
            NanCanonicalization::AtObservation => format!("at-observation, pass v{PASS_VERSION}"),
            NanCanonicalization::EveryOperation => "every-operation (cranelift)".to_string(),
        }
    }
}

pub use super::rewrite::RewriteError as FloatPassError;

/// Rewrites every core module of a component (nested components included).
pub fn rewrite_component(component: &[u8]) -> Result<Vec<u8>, FloatPassError> {
    rewrite::rewrite_component(component, &function::rewrite)
}

/// Rewrites one core module.
pub fn rewrite_module(module: &[u8]) -> Result<Vec<u8>, FloatPassError> {
    rewrite::rewrite_module(module, &function::rewrite)
}

/// Makes [`PASS_OPERATORS`] free in `cost` (the pass charges the guest's own uses of them
/// with a filler).
pub(crate) fn free_operators(cost: &mut OperatorCost) {
    cost.LocalGet = 0;
    cost.LocalTee = 0;
    cost.F32Const = 0;
    cost.F64Const = 0;
    cost.V128Const = 0;
    cost.F32Ge = 0;
    cost.F64Ge = 0;
    cost.F32x4Eq = 0;
    cost.F64x2Eq = 0;
    cost.TypedSelect = 0;
    cost.V128Bitselect = 0;
}

/// Configures `config` for code rewritten as the sandbox rewrites it: NaN determinism by
/// `mode`, loops unrolled or not, and the fuel table that keeps the guest's fuel what it was
/// (each pass's own operators free, the guest's uses of them paid by fillers).
pub(crate) fn configure(config: &mut wasmtime::Config, mode: NanCanonicalization, unrolled: bool) {
    let mut cost = OperatorCost::new();
    if unrolled {
        super::unroll::free_operators(&mut cost);
    }
    match mode {
        NanCanonicalization::AtObservation => free_operators(&mut cost),
        NanCanonicalization::EveryOperation => {}
    }
    config.cranelift_nan_canonicalization(mode == NanCanonicalization::EveryOperation);
    if unrolled || mode == NanCanonicalization::AtObservation {
        config.operator_cost(cost);
    }
}

#[cfg(test)]
mod tests;
