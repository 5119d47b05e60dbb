//! Fuzz target `floats`: a float-heavy core module generated with `wasm-smith` from the
//! fuzzer's bytes, run with the engine-wide NaN canonicalisation and through Cue's float pass,
//! and as written and with its loops unrolled; the checks (`cue_host::fuzzing::floats` and
//! `::unrolling`) panic if anything observable differs.

#![no_main]

#[path = "../float_modules.rs"]
mod float_modules;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Modules without float arithmetic have no NaN to canonicalise: not worth the two compiles.
    if let Some(module) = float_modules::float_module(data)
        && float_modules::float_arithmetic(&module) > 0
    {
        cue_host::fuzzing::floats(&module);
        cue_host::fuzzing::unrolling(&module);
    }
});
