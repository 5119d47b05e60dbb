//! Embeds the JavaScript runtime (`js-runtime/`, built for wasm32-wasip2) in `cue`, so that
//! `cue run --js` works from the installed binary alone.
//!
//! The runtime is built into `<target>/js-runtime` (a fixed place, shared with `cargo xtask
//! guests`, so `cargo build`, `cargo clippy` and `cargo test` build it once between them) and
//! only when its sources change. `CUE_JS_RUNTIME=<file.wasm>` embeds a prebuilt runtime
//! instead (for packagers; nothing is built then).

use std::path::{Path, PathBuf};

#[path = "../js-runtime/builder.rs"]
mod builder;

/// The files whose change means the runtime must be rebuilt, relative to the workspace root.
const SOURCES: [&str; 6] = [
    "js-runtime/src",
    "js-runtime/wit",
    "js-runtime/Cargo.toml",
    "js-runtime/Cargo.lock",
    "js-runtime/build.rs",
    "wit",
];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ lives in the workspace").to_path_buf();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("js.wasm");
    println!("cargo:rerun-if-env-changed=CUE_JS_RUNTIME");
    println!("cargo:rerun-if-changed=../js-runtime/builder.rs");
    let built = match std::env::var_os("CUE_JS_RUNTIME") {
        Some(prebuilt) => PathBuf::from(prebuilt),
        None => {
            for source in SOURCES {
                println!("cargo:rerun-if-changed={}", root.join(source).display());
            }
            let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            builder::build(&root, &target_dir(&root), &cargo).unwrap_or_else(|e| panic!("{e}"))
        }
    };
    std::fs::copy(&built, &out)
        .unwrap_or_else(|e| panic!("cannot copy the JavaScript runtime {}: {e}", built.display()));
    println!("cargo:rustc-env=CUE_JS_RUNTIME_VERSION={}", runtime_version(&root));
}

/// The runtime's version, from `js-runtime/Cargo.toml`: the version it is published under
/// (`js@<version>`).
fn runtime_version(root: &Path) -> String {
    let manifest = std::fs::read_to_string(root.join("js-runtime/Cargo.toml"))
        .unwrap_or_else(|e| panic!("cannot read js-runtime/Cargo.toml: {e}"));
    manifest
        .lines()
        .find_map(|line| line.strip_prefix("version = \"")?.strip_suffix('"').map(str::to_owned))
        .unwrap_or_else(|| panic!("js-runtime/Cargo.toml has no version line"))
}

/// The workspace's target directory: `CARGO_TARGET_DIR` when set, else `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}
