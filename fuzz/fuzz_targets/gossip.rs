//! Fuzz target `gossip`: every gossip message kind (ledger batches and entries, attestations, component manifests) and resource manifests.
//! The checks are `cue_host::fuzzing::gossip`, which `tests/all/fuzz_corpus.rs` also runs over
//! `fuzz/regressions/gossip/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cue_host::fuzzing::gossip(data);
});
