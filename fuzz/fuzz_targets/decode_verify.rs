//! Fuzz target: decoding and verifying untrusted bytes as a signed event or an equivocation
//! proof must never panic, and whatever decodes must be canonical.
//! The same checks run over `fuzz/regressions/` in the normal test suite
//! (`tests/all/ledger_fuzz_corpus.rs`).

#![no_main]

use cue_host::ledger::EquivocationProof;
use cue_host::protocol::Event;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::decode(data) {
        assert_eq!(event.bytes(), data, "only the canonical encoding decodes");
        let _ = event.hash();
        let _ = event.verify();
    }
    if let Ok(proof) = EquivocationProof::decode(data) {
        assert_eq!(proof.encode(), data);
    }
});
