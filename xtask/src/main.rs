//! `cargo xtask <task>`: project automation that needs more than one cargo command.
//!
//! - `test`: build the `cue` binary (the integration tests spawn it), then run every test of the
//!   workspace, including the fuzz target's regression corpus.
//! - `fuzz [SECONDS]`: run the `decode_verify` fuzz target (needs `cargo install cargo-fuzz` and
//!   a nightly toolchain), seeded with the committed regressions; new findings land in
//!   `fuzz/artifacts/` and, once minimised, belong in `fuzz/regressions/decode_verify/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("fuzz") => fuzz(args.get(1).map(String::as_str).unwrap_or("60")),
        _ => bail!("usage: cargo xtask test [cargo test args] | cargo xtask fuzz [SECONDS]"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn cargo(args: &[&str], dir: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    let root = root();
    cargo(&["build", "-p", "cue-host", "--bin", "cue"], &root)?;
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args, &root)
}

fn fuzz(seconds: &str) -> anyhow::Result<()> {
    let fuzz_dir = root().join("fuzz");
    let corpus = fuzz_dir.join("corpus/decode_verify");
    std::fs::create_dir_all(&corpus)
        .with_context(|| format!("cannot create {}", corpus.display()))?;
    for entry in std::fs::read_dir(fuzz_dir.join("regressions/decode_verify"))? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, corpus.join(name))?;
        }
    }
    let status = Command::new("cargo")
        .args([
            "+nightly",
            "fuzz",
            "run",
            "--dev",
            "--sanitizer",
            "none",
            "decode_verify",
        ])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .current_dir(&fuzz_dir)
        .status()
        .context("cannot run cargo +nightly fuzz (cargo install cargo-fuzz)")?;
    if !status.success() {
        bail!("the fuzzer found a failure ({status}); see fuzz/artifacts/decode_verify/");
    }
    Ok(())
}
