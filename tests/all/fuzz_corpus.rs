//! Every fuzz target's checks over its committed regression inputs (`fuzz/regressions/<target>/`),
//! so every past finding stays fixed in the normal test suite: `decode_verify`'s checks below,
//! the others' from `cue_host::fuzzing` — the very functions the fuzz targets call.
//!
//! A regression input named `<accepts|refuses>.<decoder>.<what>` must be accepted or refused by
//! that decoder; any other name (a minimized crash) must only be read without a panic. The
//! seeds the encoders write today (`cue_host::fuzzing::seeds`) are checked the same way, and
//! `cargo test -p cue-host --test all write_seed_inputs -- --ignored` writes them to
//! `fuzz/regressions/` and `fuzz/corpus/`.

use std::path::PathBuf;
use std::sync::OnceLock;

use cue_host::fuzzing::{self, CallSample, Calls, SAMPLE_CALLS, TARGETS, Verdict};
use cue_host::ledger::EquivocationProof;
use cue_host::protocol::{Event, EventError};

use crate::support::guest_bytes;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The committed regression inputs of `target`, by file stem, sorted.
fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("regressions").join(target);
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
    let files = regressions("decode_verify");
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

/// The `call` target's components, loaded once for every test.
fn calls() -> &'static Calls {
    static CALLS: OnceLock<Calls> = OnceLock::new();
    CALLS.get_or_init(|| {
        let bytes: Vec<Vec<u8>> = SAMPLE_CALLS.iter().map(|(name, _)| guest_bytes(name)).collect();
        let samples: Vec<CallSample<'_>> = SAMPLE_CALLS
            .iter()
            .zip(&bytes)
            .map(|(&(name, calls), bytes)| CallSample { name, bytes, calls })
            .collect();
        Calls::load(&samples).unwrap_or_else(|e| panic!("the example components do not load: {e}"))
    })
}

/// The fuzz target `target`'s check of `data`.
fn check(target: &str, data: &[u8]) -> Verdict {
    match target {
        "rpc" => fuzzing::rpc(data),
        "job_frame" => fuzzing::job_frame(data),
        "blob_frame" => fuzzing::blob_frame(data),
        "gossip" => fuzzing::gossip(data),
        "call" => calls().check(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// Checks `data` with `target`'s check, and what its name promises.
fn check_named(target: &str, name: &str, data: &[u8]) -> Verdict {
    let verdict = check(target, data);
    let mut parts = name.splitn(3, '.');
    match (parts.next(), parts.next()) {
        (Some("accepts"), Some(decoder)) => {
            assert!(verdict.accepted(decoder), "{target}/{name}: {decoder} refused it: {verdict:#?}")
        }
        (Some("refuses"), Some(decoder)) => assert!(
            !verdict.accepted(decoder) && verdict.refusal(decoder).is_some(),
            "{target}/{name}: {decoder} did not refuse it: {verdict:#?}"
        ),
        _ => {}
    }
    verdict
}

/// Checks every committed regression input of `target` and every seed its encoders make
/// today; answers the committed inputs' verdicts by name.
fn replay(target: &str) -> Vec<(String, Verdict)> {
    for (name, data) in fuzzing::seeds(target) {
        check_named(target, &name, &data);
    }
    let files = regressions(target);
    assert!(files.len() >= 8, "{target}: the regression inputs are committed");
    files
        .into_iter()
        .map(|(name, data)| {
            let verdict = check_named(target, &name, &data);
            (name, verdict)
        })
        .collect()
}

/// The refusal of `decoder` for the committed input `name` among `verdicts`.
fn refusal<'v>(verdicts: &'v [(String, Verdict)], name: &str, decoder: &str) -> &'v str {
    let (_, verdict) =
        verdicts.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} is committed"));
    verdict.refusal(decoder).unwrap_or_else(|| panic!("{name}: {decoder} did not refuse it"))
}

#[test]
fn rpc_regressions_are_read_as_the_codec_reads_them_without_panicking() {
    let verdicts = replay("rpc");
    assert!(
        refusal(&verdicts, "refuses.compute-request.forged", "compute-request").contains("bad signature")
    );
    assert!(refusal(&verdicts, "refuses.component-name.bad-name", "component-name").contains("name"));
}

#[test]
fn an_rpc_request_is_read_up_to_64_kib_and_no_further() {
    // {"GetComponents": {"name": <text of n bytes>}} as the codec writes it.
    let get_components = |n: usize| {
        let mut bytes = b"\xa1\x6dGetComponents\xa1\x64name\x7a".to_vec();
        bytes.extend_from_slice(&(n as u32).to_be_bytes());
        bytes.extend(std::iter::repeat_n(b'a', n));
        bytes
    };
    let fits = get_components(64 * 1024 - 30);
    assert!(fits.len() <= 64 * 1024);
    assert!(fuzzing::rpc(&fits).accepted("request"));
    let over = get_components(64 * 1024);
    let refused = fuzzing::rpc(&over);
    assert!(
        !refused.accepted("request") && refused.refusal("request").is_some(),
        "cut at 64 KiB: {refused:?}"
    );
    // What follows the first item within the limit is not read: a request, then anything.
    let mut then_anything = b"\x6bGetManifest".to_vec();
    then_anything.extend(std::iter::repeat_n(0xff, 100 * 1024));
    assert!(fuzzing::rpc(&then_anything).accepted("request"));
}

#[test]
fn job_frame_regressions_are_read_frame_by_frame_without_panicking() {
    let verdicts = replay("job_frame");
    let over = refusal(&verdicts, "refuses.frame.over-the-limit", "frame");
    assert!(over.contains("4294967295 bytes exceeds the limit"), "{over}");
}

#[test]
fn blob_frame_regressions_are_read_as_the_requester_reads_them_without_panicking() {
    let verdicts = replay("blob_frame");
    assert!(refusal(&verdicts, "refuses.status.busy", "status").contains("busy"));
    let over = refusal(&verdicts, "refuses.size.found-over-the-limit", "size");
    assert!(over.contains(&(64u64 << 20).to_string()), "the limit is named: {over}");
}

#[test]
fn gossip_regressions_are_read_as_every_message_kind_without_panicking() {
    let verdicts = replay("gossip");
    let batch = refusal(&verdicts, "refuses.ledger-batch.non-canonical-length", "ledger-batch");
    assert!(batch.contains("not canonically encoded"), "{batch}");
    assert!(refusal(&verdicts, "refuses.resource-manifest.expired", "resource-manifest").contains("expired"));
    assert!(refusal(&verdicts, "refuses.ledger-entry.forged", "ledger-entry").contains("bad signature"));
}

#[test]
fn call_regressions_are_type_checked_against_real_components_without_panicking() {
    let verdicts = replay("call");
    let wrong = refusal(&verdicts, "refuses.wave-call.wrong-type", "wave-call");
    assert!(wrong.contains("bad-arguments"), "{wrong}");
}

#[test]
fn every_target_has_committed_regression_inputs() {
    for target in TARGETS {
        assert!(!regressions(target).is_empty(), "fuzz/regressions/{target}/ is committed");
    }
}

/// Writes every target's seeds to `fuzz/regressions/<target>/<name>.bin` (replayed above) and
/// `fuzz/corpus/<target>/seed-<name>` (where `cargo fuzz run` starts from).
#[test]
#[ignore = "writes the seed inputs into fuzz/; run on purpose"]
fn write_seed_inputs() {
    for target in TARGETS {
        let regressions = fuzz_dir().join("regressions").join(target);
        let corpus = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&regressions).unwrap();
        std::fs::create_dir_all(&corpus).unwrap();
        for (name, data) in fuzzing::seeds(target) {
            std::fs::write(regressions.join(format!("{name}.bin")), &data).unwrap();
            std::fs::write(corpus.join(format!("seed-{name}")), &data).unwrap();
        }
    }
}
