//! The fuzz target's checks (`fuzz/fuzz_targets/decode_verify.rs`) over its committed
//! regression corpus, so every past finding stays fixed in the normal test suite.

use std::path::PathBuf;

use cue_host::ledger::EquivocationProof;
use cue_host::protocol::{Event, EventError};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/decode_verify");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Exactly what the fuzz target does, returning the verdict for the corpus-specific checks.
fn decode_verify(data: &[u8]) -> Result<(), EventError> {
    let _ = EquivocationProof::decode(data).map(|proof| assert_eq!(proof.encode(), data));
    let event = Event::decode(data)?;
    assert_eq!(event.bytes(), data, "only the canonical encoding decodes");
    event.verify().map(drop)
}

#[test]
fn regression_corpus_decodes_and_verifies_without_panicking() {
    let files = corpus();
    assert!(files.len() >= 10, "the corpus is committed");
    for (name, data) in files {
        let verdict = decode_verify(&data);
        let expected_ok = name.starts_with("valid-");
        assert_eq!(verdict.is_ok(), expected_ok, "{name}: {verdict:?}");
        match name.as_str() {
            "forged-signature" => assert_eq!(verdict, Err(EventError::BadSignature)),
            "non-canonical-amount" => assert_eq!(verdict, Err(EventError::NonCanonical)),
            "major-version-2" => {
                assert!(matches!(verdict, Err(EventError::UnknownMajorVersion { .. })))
            }
            "unknown-kind" => assert!(matches!(verdict, Err(EventError::UnknownKind(_)))),
            "compute-request-kind" => {
                assert!(matches!(verdict, Err(EventError::UnsupportedKind(_))))
            }
            _ => {}
        }
    }
}
