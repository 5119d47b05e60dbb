//! Deterministic floats (issue 22): Cue's float pass against the engine-wide NaN
//! canonicalisation it replaces. Every example guest, the JavaScript runtime and a corpus of
//! generated float-heavy modules must observe exactly the same both ways — results, logs,
//! fuel, and for core modules every byte of memory.

use cue_host::fuzzing::{FloatsVerdict, floats};
use cue_host::local::js::{JsRun, JsRuntime};
use cue_host::sandbox::differential::count_operators;
use cue_host::sandbox::{CodeSource, Invocation, Limits, NanCanonicalization, Sandbox, SandboxConfig};

use crate::float_modules::{float_arithmetic, float_module};
use crate::support::guest_bytes;

/// Example guests and calls that exercise their float code (and NaNs where they can).
const GUEST_CALLS: [(&str, &[&str]); 9] = [
    ("nbody", &["energy-after(2000)"]),
    ("numeric", &["matmul-f32(48)", "matmul-f64(48)", "mandelbrot(64)"]),
    // The same kernels built with WebAssembly SIMD: vector float arithmetic through the pass.
    ("nbody-simd", &["energy-after(2000)"]),
    ("numeric-simd", &["matmul-f32(48)", "matmul-f64(48)", "mandelbrot(64)"]),
    ("wit-first", &["summarize([1.0, 2.5])", "summarize([nan, -1.0])", "summarize([inf, -inf])"]),
    ("fib", &["fib(90)"]),
    ("hash", &["sha256-pattern(5000)"]),
    ("wordcount", &[r#"count-words("a b a")"#]),
    ("roundtrip", &[r#"parse("1 2")"#]),
];

fn sandbox(mode: NanCanonicalization) -> Sandbox {
    Sandbox::new(SandboxConfig { nan_canonicalization: mode, ..SandboxConfig::default() }).expect("sandbox")
}

#[test]
fn every_example_guest_gives_the_same_result_log_and_fuel_through_the_pass() {
    let pass = sandbox(NanCanonicalization::AtObservation);
    let every = sandbox(NanCanonicalization::EveryOperation);
    every_guest_call_agrees(&pass, &every);
}

/// Runs every call of [`GUEST_CALLS`] in both sandboxes (their fingerprints differ) and
/// asserts the same result, log and fuel.
pub(crate) fn every_guest_call_agrees(a: &Sandbox, b: &Sandbox) {
    assert_ne!(a.fingerprint().id, b.fingerprint().id);
    for (guest, calls) in GUEST_CALLS {
        let bytes = guest_bytes(guest);
        let (in_a, in_b) = (a.load(&bytes).expect("loads"), b.load(&bytes).expect("loads"));
        for text in calls {
            let run = |loaded: &cue_host::sandbox::LoadedComponent| {
                let call = loaded.parse_call(text).expect("call");
                let outcome = loaded.invoke(&call, &Limits::default(), &Invocation::default());
                let result = outcome.result.map(|r| r.wave).map_err(|e| e.to_string());
                let log: Vec<String> = outcome.log.iter().map(|l| l.text.clone()).collect();
                (result, log, outcome.fuel_used)
            };
            let (from_a, from_b) = (run(&in_a), run(&in_b));
            assert!(from_a.0.is_ok(), "{guest} {text}: {:?}", from_a.0);
            assert_eq!(from_a, from_b, "{guest} {text}");
        }
    }
}

#[test]
fn javascript_numbers_are_the_same_through_the_pass() {
    let code = "(a, b) => { const xs = [Math.sqrt(a), a / b, 0 / 0, Math.sin(a) * Math.exp(b), \
                -(a * Infinity - Infinity)]; console.log(String(xs)); \
                return xs.map(x => Object.is(x, NaN) ? 'nan' : x.toFixed(12)); }";
    let run = JsRun { code: code.into(), args: "[2.5, 0.1]".into(), limits: Limits::default(), repeat: 1 };
    let outcome = |mode| {
        let sandbox = sandbox(mode);
        let report = JsRuntime::load(&sandbox).expect("the runtime loads").run(&run);
        let log: Vec<String> = report.log.iter().map(|l| l.text.clone()).collect();
        (report.result, report.wave, log, report.fuel)
    };
    let with_pass = outcome(NanCanonicalization::AtObservation);
    assert!(with_pass.1.is_some(), "{with_pass:?}");
    assert_eq!(with_pass, outcome(NanCanonicalization::EveryOperation));
}

/// splitmix64: the corpus's bytes, the same on every run.
pub(crate) fn corpus_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// How many generated modules the corpus compares (each with at least
/// `MIN_FLOAT_ARITHMETIC` float arithmetic operators).
const CORPUS_MODULES: usize = 300;
const MIN_FLOAT_ARITHMETIC: usize = 4;

#[test]
fn generated_float_heavy_modules_observe_the_same_through_the_pass() {
    let (mut compared, mut calls, mut arithmetic) = (0, 0, 0);
    let mut inconclusive = Vec::new();
    let mut seed = 0;
    while compared + inconclusive.len() < CORPUS_MODULES {
        seed += 1;
        assert!(seed < 50 * CORPUS_MODULES as u64, "wasm-smith makes too few float-heavy modules");
        let Some(module) = float_module(&corpus_bytes(seed, 8192)) else { continue };
        let ops = float_arithmetic(&module);
        if ops < MIN_FLOAT_ARITHMETIC {
            continue;
        }
        arithmetic += ops;
        match floats(&module) {
            FloatsVerdict::Same { calls: n } => {
                compared += 1;
                calls += n;
            }
            FloatsVerdict::Inconclusive(why) => inconclusive.push(why),
        }
    }
    eprintln!(
        "{compared} modules compared ({calls} export calls, {arithmetic} float arithmetic operators), \
         {} inconclusive (e.g. {:?}), from {seed} seeds",
        inconclusive.len(),
        inconclusive.first()
    );
    assert!(
        compared >= CORPUS_MODULES * 3 / 4,
        "only {compared} of {CORPUS_MODULES} could be compared; the first reasons: {:?}",
        &inconclusive[..inconclusive.len().min(3)]
    );
}

/// Code compiled from the rewritten component is cached under the pass's version, and a
/// sandbox without the pass sharing the cache compiles its own instead of loading it.
#[test]
fn the_code_cache_keeps_code_with_and_without_the_pass_apart() {
    let dir = tempfile::tempdir().unwrap();
    let config = |mode| SandboxConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        nan_canonicalization: mode,
        ..SandboxConfig::default()
    };
    let bytes = guest_bytes("fib");
    let pass = Sandbox::new(config(NanCanonicalization::AtObservation)).unwrap();
    assert_eq!(pass.load(&bytes).unwrap().load_stats().0, CodeSource::Compiled);
    let version = format!("-floats{}-", cue_host::sandbox::floats::PASS_VERSION);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert!(names.len() == 1 && names[0].contains(&version), "{names:?}");
    let every = Sandbox::new(config(NanCanonicalization::EveryOperation)).unwrap();
    assert_eq!(every.load(&bytes).unwrap().load_stats().0, CodeSource::Compiled);
    assert_eq!(every.load(&bytes).unwrap().load_stats().0, CodeSource::Cache);
    assert_eq!(pass.load(&bytes).unwrap().load_stats().0, CodeSource::Cache);
}

/// Built with WebAssembly SIMD, the matrix multiply's inner loop is a vector multiply and add
/// whose sum is stored: the pass canonicalises the vector it stores, not each operation.
#[test]
fn vector_float_arithmetic_is_canonicalised_where_observed_not_after_each_operation() {
    use wasmparser::Operator as O;
    let bytes = guest_bytes("numeric-simd");
    let arithmetic = count_operators(&bytes, |op| {
        matches!(op, O::F32x4Add | O::F32x4Mul | O::F64x2Add | O::F64x2Mul | O::F32x4Sub | O::F64x2Sub)
    });
    let rewritten = cue_host::sandbox::floats::rewrite_component(&bytes).expect("rewrites");
    let canonicalisations = count_operators(&rewritten, |op| matches!(op, O::F32x4Eq | O::F64x2Eq));
    eprintln!("{arithmetic} vector float operators, {canonicalisations} vector canonicalisations");
    assert!(arithmetic >= 4, "the simd build vectorises both matrix multiplies: {arithmetic}");
    // After every operation it would be one per operator; where observed, one per store.
    assert!(canonicalisations < arithmetic, "{canonicalisations} of {arithmetic}");
}
