//! Fuzz target `floats`: a generated core module (the target makes it with `wasm-smith` from
//! the fuzzer's bytes, `fuzz/float_modules.rs`) run with the engine-wide NaN canonicalisation
//! and through the float pass. Property: both runs observe exactly the same — every export's
//! result bits or trap, every import argument, every byte of memory, every global, the fuel.

use crate::sandbox::floats::differential::{self, Comparison};

/// What one module gave.
#[derive(Debug, PartialEq, Eq)]
pub enum FloatsVerdict {
    /// Both runs observed the same; the number of export calls compared.
    Same {
        /// Export calls made (each compared).
        calls: usize,
    },
    /// The module could not be compared (see [`Comparison::Inconclusive`]).
    Inconclusive(String),
}

/// Runs `module` both ways; panics if the pass changed anything observable.
pub fn floats(module: &[u8]) -> FloatsVerdict {
    match differential::compare(module) {
        Ok(Comparison::Same(observation)) => FloatsVerdict::Same { calls: observation.calls.len() },
        Ok(Comparison::Inconclusive(why)) => FloatsVerdict::Inconclusive(why),
        Err(difference) => panic!("{difference}"),
    }
}
