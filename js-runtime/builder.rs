//! Builds the JavaScript runtime for wasm32-wasip2. Shared, by `#[path]`, by `host/build.rs`
//! (which embeds the runtime in `cue`) and by `cargo xtask guests` (which places it at
//! `target/guests/js.wasm`), so both run the same command with the same environment into the
//! same target directory and the second one finds nothing to do.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Installs the wasm32-wasip2 target through rustup if it is missing (without rustup, assumes
/// it is installed).
pub fn ensure_wasm_target() -> Result<(), String> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") => {
            Ok(())
        }
        Ok(_) => {
            let status = Command::new("rustup")
                .args(["target", "add", "wasm32-wasip2"])
                .status()
                .map_err(|e| format!("cannot run rustup: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("rustup target add wasm32-wasip2 failed: {status}"))
            }
        }
        Err(_) => Ok(()),
    }
}

/// Builds the runtime in release into `<target_dir>/js-runtime` and returns the component's
/// path. `cargo` is the cargo to run (the one running the caller).
pub fn build(root: &Path, target_dir: &Path, cargo: &Path) -> Result<PathBuf, String> {
    ensure_wasm_target()?;
    let build_dir = target_dir.join("js-runtime");
    let mut command = Command::new(cargo);
    command
        .current_dir(root.join("js-runtime"))
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&build_dir);
    // Whatever the outer cargo set for its own build (flags, wrappers such as clippy-driver,
    // the target) must not reach this one: it would change the runtime's bytes or rebuild it
    // for every caller. The registry, network and jobserver settings stay.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let keep = ["CARGO_HOME", "CARGO_MAKEFLAGS"].contains(&key.as_ref())
            || key.starts_with("CARGO_NET_")
            || key.starts_with("CARGO_HTTP_")
            || key.starts_with("CARGO_REGISTRIES_");
        let outer = key.starts_with("CARGO_") || key.starts_with("RUSTC") || key.starts_with("RUSTDOC");
        let build_script =
            ["RUSTFLAGS", "TARGET", "HOST", "PROFILE", "OPT_LEVEL", "DEBUG", "OUT_DIR", "NUM_JOBS"];
        if (outer && !keep) || build_script.contains(&key.as_ref()) {
            command.env_remove(key.as_ref());
        }
    }
    let status = command.status().map_err(|e| format!("cannot run {}: {e}", cargo.display()))?;
    if !status.success() {
        return Err(format!("building the JavaScript runtime (js-runtime/) failed: {status}"));
    }
    Ok(build_dir.join("wasm32-wasip2/release/cue_js_runtime.wasm"))
}
