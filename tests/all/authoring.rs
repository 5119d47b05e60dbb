//! `cue new` and `cue build` through the real binary: a scaffolded job crate builds for
//! wasm32-wasip2 from this checkout and runs.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Cue, stderr, stdout};

/// A target dir shared by the scaffolded crates of all test runs, so the SDK and its
/// dependencies compile once.
fn job_target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/job-crates")
}

#[test]
fn a_new_job_builds_with_cargo_and_cue_build_and_runs() {
    let cue = Cue::new();
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("myjob");
    let output = cue.run(&["new", crate_dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("created job crate `myjob`"), "{}", stdout(&output));

    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", job_target_dir())
        .status()
        .unwrap();
    assert!(status.success(), "cargo build of the scaffold failed");
    let component = job_target_dir().join("wasm32-wasip2/release/myjob.wasm");
    // Built with WebAssembly SIMD (the scaffold's `.cargo/config.toml`): LLVM used vectors.
    let vector_ops =
        cue_host::sandbox::differential::count_operators(&std::fs::read(&component).unwrap(), |op| {
            format!("{op:?}").starts_with("V128")
        });
    assert!(vector_ops > 0, "no vector operators in the scaffold's component");
    let output = cue.run(&["run", component.to_str().unwrap(), r#"greet("world")"#]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), r#""Hello, world!""#);
    let output = cue.run(&["run", component.to_str().unwrap(), r#"count-words("b a b")"#, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["result"], serde_json::json!([{"word": "b", "count": 2}, {"word": "a", "count": 1}]));

    let wit_file = dir.path().join("myjob.wit");
    let output = cue
        .command()
        .args(["build", crate_dir.to_str().unwrap(), "--wit", wit_file.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", job_target_dir())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains(&format!("component {}", component.display())), "{text}");
    assert!(text.contains("sha256    ") && text.contains("size      "), "{text}");
    assert!(text.contains("/// Greets `name`.\n  export greet: func(name: string) -> string;"), "{text}");
    let wit = std::fs::read_to_string(&wit_file).unwrap();
    assert!(wit.contains("record word-count {"), "{wit}");
}

#[test]
fn new_refuses_a_non_empty_directory_and_a_bad_name() {
    let cue = Cue::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let output = cue.run(&["new", dir.path().to_str().unwrap(), "--name", "job"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not empty"), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(), "mine");

    let output = cue.run(&["new", dir.path().join("x").to_str().unwrap(), "--name", "9lives"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not a valid crate name"), "{}", stderr(&output));
}

#[test]
fn build_outside_a_crate_is_a_clear_error() {
    let cue = Cue::new();
    let dir = tempfile::tempdir().unwrap();
    let output = cue.run(&["build", dir.path().to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no Cargo.toml"), "{}", stderr(&output));
}
