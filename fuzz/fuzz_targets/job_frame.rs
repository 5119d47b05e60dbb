//! Fuzz target `job_frame`: `/cue-job/1.0.0` streams, frame by frame, and the signed events the frames carry.
//! The checks are `cue_host::fuzzing::job_frame`, which `tests/all/fuzz_corpus.rs` also runs over
//! `fuzz/regressions/job_frame/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cue_host::fuzzing::job_frame(data);
});
