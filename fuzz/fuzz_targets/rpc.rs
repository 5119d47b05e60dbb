//! Fuzz target `rpc`: `/cue-rpc/1.0.0` requests and answers, as the request-response codec reads them.
//! The checks are `cue_host::fuzzing::rpc`, which `tests/all/fuzz_corpus.rs` also runs over
//! `fuzz/regressions/rpc/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cue_host::fuzzing::rpc(data);
});
