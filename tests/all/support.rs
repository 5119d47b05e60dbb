//! Helpers shared by the integration tests.

use std::path::PathBuf;
use std::process::{Command, Output};

use cue_host::sandbox::{Sandbox, SandboxConfig};

/// Path of an example guest component built by `cargo xtask guests`.
pub fn guest(name: &str) -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guests").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run `cargo xtask guests` first", path.display());
    path
}

/// The bytes of an example guest.
pub fn guest_bytes(name: &str) -> Vec<u8> {
    std::fs::read(guest(name)).expect("read guest")
}

/// A sandbox without a disk cache.
pub fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig::default()).expect("sandbox")
}

/// Runs the real `cue` binary with a fresh data dir of its own.
pub struct Cue {
    pub data_dir: tempfile::TempDir,
}

impl Cue {
    pub fn new() -> Self {
        Cue { data_dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cue"));
        command.arg("--data-dir").arg(self.data_dir.path());
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run cue")
    }

    /// `cue run <guest> <call> --json [extra]`, parsed.
    pub fn run_json(&self, guest_name: &str, call: &str, extra: &[&str]) -> (i32, serde_json::Value) {
        let path = guest(guest_name);
        let mut args = vec!["run", path.to_str().expect("utf-8 path"), call, "--json"];
        args.extend_from_slice(extra);
        let output = self.run(&args);
        let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&output.stdout), stderr(&output))
        });
        (output.status.code().expect("exit code"), json)
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
