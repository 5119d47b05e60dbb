//! Fuzz target `floats`: a generated core module (the target makes it with `wasm-smith` from
//! the fuzzer's bytes, `fuzz/float_modules.rs`) run with the engine-wide NaN canonicalisation
//! and through the float pass, and as written and with its loops unrolled. Property: each two
//! runs observe exactly the same — every export's result bits or trap, every import argument,
//! every byte of memory, every global, the fuel (see [`differential`] for a run that runs out
//! of fuel).

use crate::sandbox::differential::{self, Comparison};

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

/// Runs `module` both ways; panics if the float pass changed anything observable.
pub fn floats(module: &[u8]) -> FloatsVerdict {
    verdict(differential::compare(module))
}

/// Runs `module` as written and unrolled; panics if the unrolling changed anything observable.
pub fn unrolling(module: &[u8]) -> FloatsVerdict {
    verdict(differential::compare_unrolled(module))
}

fn verdict(comparison: Result<Comparison, differential::Difference>) -> FloatsVerdict {
    match comparison {
        Ok(Comparison::Same(observation)) => FloatsVerdict::Same { calls: observation.calls.len() },
        Ok(Comparison::Inconclusive(why)) => FloatsVerdict::Inconclusive(why),
        Err(difference) => panic!("{difference}"),
    }
}
