//! `cargo xtask`: the project's own build steps, so a fresh machine needs nothing else.
//!
//! - `guests`: install the wasm32-wasip2 target if missing, build every example guest in
//!   release, and place the components at `target/guests/<name>.wasm`.
//! - `test`: guests, `cargo fmt --check`, `cargo clippy --all-targets -D warnings`, every test.
//! - `demo`: guests, then run the examples with `cue run`, printing results, fuel and time.
//! - `bench [sandbox|ledger|net]`: every benchmark, or the one named; the sandbox benchmark
//!   builds the guests first (figures go to docs/PERFORMANCE.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "guests" => guests().map(|_| ()),
        "test" => test(),
        "demo" => demo(),
        "bench" => bench(std::env::args().nth(2).as_deref()),
        _ => {
            eprintln!("usage: cargo xtask <guests|test|demo|bench [{}]>", BENCHES.join("|"));
            bail!("unknown task `{task}`")
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(command: &mut Command) -> Result<()> {
    eprintln!("$ {command:?}");
    let status = command.status().with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") => {
            Ok(())
        }
        Ok(_) => run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"])),
        Err(_) => {
            eprintln!("rustup not found; assuming the wasm32-wasip2 target is installed");
            Ok(())
        }
    }
}

/// Builds the example guests; returns the directory holding `<name>.wasm`.
fn guests() -> Result<PathBuf> {
    ensure_wasm_target()?;
    let root = root();
    let build_dir = root.join("target/guests-build");
    run(cargo()
        .current_dir(root.join("examples-guests"))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&build_dir))?;
    let out = root.join("target/guests");
    std::fs::create_dir_all(&out)?;
    let built = build_dir.join("wasm32-wasip2/release");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&built)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let name = path.file_stem().expect("file name").to_string_lossy().replace('_', "-");
            std::fs::copy(&path, out.join(format!("{name}.wasm")))?;
            names.push(name);
        }
    }
    for entry in std::fs::read_dir(root.join("examples-guests/wat"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wat") {
            let name = path.file_stem().expect("file name").to_string_lossy().into_owned();
            let bytes =
                wat::parse_file(&path).with_context(|| format!("cannot assemble {}", path.display()))?;
            std::fs::write(out.join(format!("{name}.wasm")), bytes)?;
            names.push(name);
        }
    }
    names.sort();
    eprintln!("guests in {}: {}", out.display(), names.join(", "));
    Ok(out)
}

fn test() -> Result<()> {
    guests()?;
    run(cargo().current_dir(root()).args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(root().join("examples-guests")).args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(root()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().current_dir(root()).args(["test", "--workspace"]))?;
    Ok(())
}

/// The benchmarks of `cue-host` (`host/benches/<name>.rs`), in the order `bench` runs them.
const BENCHES: [&str; 3] = ["sandbox", "ledger", "net"];

fn bench(only: Option<&str>) -> Result<()> {
    let selected = match only {
        None => BENCHES.to_vec(),
        Some(name) if BENCHES.contains(&name) => vec![name],
        Some(name) => bail!("unknown benchmark `{name}`: one of {}", BENCHES.join(", ")),
    };
    for name in selected {
        if name == "sandbox" {
            guests()?;
        }
        run(cargo().current_dir(root()).args(["bench", "-p", "cue-host", "--bench", name]))?;
    }
    Ok(())
}

fn demo() -> Result<()> {
    let guests = guests()?;
    run(cargo().current_dir(root()).args(["build", "--quiet", "-p", "cue-host"]))?;
    let cue = root().join("target/debug/cue");
    let data_dir = std::env::temp_dir().join(format!("cue-demo-{}", std::process::id()));
    let jobs: &[(&str, &str)] = &[
        ("fib", "fib(30)"),
        ("fib", "fib(90)"),
        ("hash", r#"sha256-string("hello, cue")"#),
        ("hash", "sha256-pattern(1048576)"),
        ("wordcount", r#"count-words("the cat and the hat and the bat")"#),
        ("nbody", "energy-after(100000)"),
        ("roundtrip", r#"parse("1, 2.5, 4")"#),
        ("roundtrip", "area(square({x: 3, y: 4}))"),
        ("wit-first", "summarize([1.0, 2.5, -3.0])"),
        ("wat-triple", "triple(14)"),
        ("hostile-infinite-loop", "run()"),
        ("hostile-recursion", "run()"),
        ("hostile-memory-bomb", "run()"),
        ("hostile-table-growth", "run()"),
        ("hostile-panic", "run()"),
        ("hostile-huge-result", "run()"),
        ("hostile-log-flood", "run()"),
        ("hostile-host-call-loop", "run()"),
        ("hostile-forbidden-import", "run()"),
    ];
    for (guest, call) in jobs {
        println!("\n$ cue run target/guests/{guest}.wasm '{call}'");
        let status = Command::new(&cue)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["run"])
            .arg(guests.join(format!("{guest}.wasm")))
            .arg(call)
            .status()?;
        println!("(exit code {})", status.code().unwrap_or(-1));
    }
    std::fs::remove_dir_all(&data_dir).ok();
    Ok(())
}
