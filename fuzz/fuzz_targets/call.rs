//! Fuzz target `call`: calls as text (WAVE and JSON) and reported results (WAVE), type-checked
//! against real example components, loaded once.
//! The checks are `cue_host::fuzzing::Calls::check`, which `tests/all/fuzz_corpus.rs` also
//! runs over `fuzz/regressions/call/`. Build the components first: `cargo xtask guests`.

#![no_main]

use std::sync::OnceLock;

use cue_host::fuzzing::{CallSample, Calls, SAMPLE_CALLS};

/// The components `SAMPLE_CALLS` names, by name.
const COMPONENTS: [(&str, &[u8]); 4] = [
    ("fib", include_bytes!("../../target/guests/fib.wasm")),
    ("wordcount", include_bytes!("../../target/guests/wordcount.wasm")),
    ("roundtrip", include_bytes!("../../target/guests/roundtrip.wasm")),
    ("wit-first", include_bytes!("../../target/guests/wit-first.wasm")),
];

fn calls() -> &'static Calls {
    static CALLS: OnceLock<Calls> = OnceLock::new();
    CALLS.get_or_init(|| {
        let samples: Vec<CallSample<'_>> = SAMPLE_CALLS
            .iter()
            .map(|&(name, calls)| {
                let (_, bytes) = COMPONENTS.iter().find(|(n, _)| *n == name).expect("embedded");
                CallSample { name, bytes, calls }
            })
            .collect();
        Calls::load(&samples).unwrap_or_else(|e| panic!("the example components do not load: {e}"))
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    calls().check(data);
});
