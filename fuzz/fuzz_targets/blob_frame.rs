//! Fuzz target `blob_frame`: the headers of `/cue-blob/1.0.0`: the request, the answer's status and size.
//! The checks are `cue_host::fuzzing::blob_frame`, which `tests/all/fuzz_corpus.rs` also runs over
//! `fuzz/regressions/blob_frame/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cue_host::fuzzing::blob_frame(data);
});
