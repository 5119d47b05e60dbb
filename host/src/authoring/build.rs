//! `cue build`: a release build of a job crate for `wasm32-wasip2` (installing the target
//! with rustup if it is missing), then the component's identity and WIT.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value as Json;

use super::error::AuthoringError;
use crate::sandbox::{ComponentReport, inspect};

/// The Rust target a job is built for: WASI 0.2, whose linker emits a component.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// A built component.
#[derive(Clone, Debug)]
pub struct BuiltComponent {
    /// Where cargo put it.
    pub path: PathBuf,
    /// Its sha256, size, WIT and the policy's verdict on its imports.
    pub report: ComponentReport,
}

/// Builds the crate in `crate_dir` (release, [`WASM_TARGET`]) and inspects the component.
/// Cargo runs in `crate_dir`, so the crate's own `.cargo/config.toml` applies (the one
/// `cue new` writes turns on WebAssembly SIMD). Cargo's progress and diagnostics go to this
/// process's stderr.
pub fn build(crate_dir: &Path) -> Result<BuiltComponent, AuthoringError> {
    let not_a_crate = || AuthoringError::NotACrate(crate_dir.to_path_buf());
    let crate_dir = &crate_dir.canonicalize().map_err(|_| not_a_crate())?;
    let manifest = crate_dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(not_a_crate());
    }
    ensure_target()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", WASM_TARGET, "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .current_dir(crate_dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| AuthoringError::Tool(format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(AuthoringError::Tool(format!("cargo build failed ({})", output.status)));
    }
    let path = component_artifact(&String::from_utf8_lossy(&output.stdout), &manifest)
        .ok_or_else(|| AuthoringError::NoComponent(crate_dir.to_path_buf()))?;
    let bytes = std::fs::read(&path).map_err(AuthoringError::io(&path))?;
    let report = inspect(&bytes).map_err(AuthoringError::Invalid)?;
    Ok(BuiltComponent { path, report })
}

/// Installs [`WASM_TARGET`] with rustup when it is missing; without rustup, assumes the
/// toolchain has it (cargo says so clearly if not).
fn ensure_target() -> Result<(), AuthoringError> {
    let Ok(installed) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .stdout(Stdio::inherit())
        .status()
        .map_err(|e| AuthoringError::Tool(format!("cannot run rustup: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(AuthoringError::Tool(format!("`rustup target add {WASM_TARGET}` failed ({status})")))
    }
}

/// The `.wasm` of the crate at `manifest`, from cargo's JSON messages.
fn component_artifact(messages: &str, manifest: &Path) -> Option<PathBuf> {
    let manifest = manifest.canonicalize().ok()?;
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Json>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["manifest_path"].as_str().and_then(|p| Path::new(p).canonicalize().ok())
                == Some(manifest.clone())
        })
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_found_among_cargo_messages() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(&manifest, "").unwrap();
        let messages = format!(
            "{}\n{}\nnot json\n",
            serde_json::json!({"reason": "compiler-artifact", "manifest_path": "/elsewhere/Cargo.toml",
                "filenames": ["/x/dep.rlib"]}),
            serde_json::json!({"reason": "compiler-artifact", "manifest_path": manifest,
                "filenames": ["/t/wasm32-wasip2/release/job.wasm"]}),
        );
        assert_eq!(
            component_artifact(&messages, &manifest),
            Some(PathBuf::from("/t/wasm32-wasip2/release/job.wasm"))
        );
        assert_eq!(component_artifact("", &manifest), None);
    }
}
