//! `cue benchmark`: real measurements, a signed manifest on disk that verifies with the
//! agent's key, and a tampered copy refused.

use cue_host::crypto::PublicKey;
use cue_host::market::{ManifestError, open_manifest};
use cue_host::protocol::EventError;

use crate::support::{Cue, sandbox, stderr};

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn json_of(cue: &Cue, args: &[&str]) -> serde_json::Value {
    let output = cue.run(args);
    assert!(output.status.success(), "cue {args:?} failed: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

#[test]
fn benchmark_measures_signs_and_stores_a_manifest() {
    let cue = Cue::new();
    let id = json_of(&cue, &["id", "--json"]);
    let json = json_of(
        &cue,
        &[
            "benchmark",
            "--json",
            "--price-per-mfuel",
            "7",
            "--max-jobs",
            "3",
            "--max-time",
            "2s",
            "--valid-for",
            "10m",
        ],
    );

    assert!(json["fuel_per_second"].as_u64().unwrap() > 0, "{json}");
    assert!(json["cores"].as_u64().unwrap() >= 1);
    assert!(json["memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(json["engine"], sandbox().fingerprint().id.as_str());
    assert_eq!(json["peer_id"], id["peer_id"]);
    assert_eq!(json["policy"]["price_per_mfuel"], 7);
    assert_eq!(json["policy"]["max_concurrent_jobs"], 3);
    assert_eq!(json["policy"]["max_execution_ms"], 2_000);
    assert_eq!(json["policy"]["max_memory_bytes"], 512 << 20);
    let lifetime = json["expires_ms"].as_u64().unwrap() - json["measured_ms"].as_u64().unwrap();
    assert_eq!(lifetime, 10 * 60 * 1000);

    let stored = std::fs::read(cue.data_dir.path().join("manifest.cbor")).expect("manifest.cbor");
    assert_eq!(hex::encode(&stored), json["signed"].as_str().unwrap());
    let manifest = open_manifest(&stored, now_ms()).expect("the stored manifest verifies");
    let agent = hex::decode(id["public_key"].as_str().unwrap()).unwrap();
    let agent = PublicKey::from_bytes(agent.try_into().unwrap()).unwrap();
    assert_eq!(manifest.header().signer, agent);
    assert_eq!(manifest.body().provider, agent);
    assert_eq!(manifest.body().fuel_per_second, json["fuel_per_second"].as_u64().unwrap());

    let mut tampered = stored.clone();
    let engine = manifest.body().engine.as_bytes();
    let at = tampered.windows(engine.len()).position(|w| w == engine).expect("the engine id is in the body");
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        open_manifest(&tampered, now_ms()).unwrap_err(),
        ManifestError::Event(EventError::BadSignature)
    );

    let expires = manifest.header().expires_ms;
    assert!(matches!(open_manifest(&stored, expires), Err(ManifestError::Event(EventError::Expired { .. }))));
}

#[test]
fn benchmark_prints_a_table() {
    let cue = Cue::new();
    let output = cue.run(&["benchmark"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    for row in ["fuel per second", "cores", "memory available", "engine", "expires"] {
        assert!(table.contains(row), "no {row:?} row in:\n{table}");
    }
    assert!(stderr(&output).contains("manifest.cbor"));
}
