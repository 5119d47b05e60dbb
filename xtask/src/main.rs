//! `cargo xtask`: the project's own build steps, so a fresh machine needs nothing else.
//!
//! - `guests`: install the wasm32-wasip2 target if missing, build every example guest and the
//!   JavaScript runtime (`js-runtime/`) in release, and place the components at
//!   `target/guests/<name>.wasm` (the runtime is `js.wasm`).
//! - `test`: guests, Chromium and its driver for the dashboard's browser tests (Debian's
//!   `chromium` and `chromium-driver`, installed with apt-get when missing), `cargo fmt
//!   --check`, `cycles`, `cargo clippy --all-targets -D warnings`, every test.
//! - `cycles`: fail on an import cycle between sibling or cousin modules of `host/src`
//!   (see `cycles::find` for the rule), listing each cycle's imports by file and line.
//! - `demo [--keep]`: guests, then run the examples with `cue run`, printing results, fuel and
//!   time; then the market on 127.0.0.1, ending with each node's dashboard address (`--keep`:
//!   the nodes stay up until Enter is pressed, to open them).
//! - `chaos --minutes N [--seed S]`: five providers, three consumers and a hostile peer as
//!   processes on 127.0.0.1, killed and restarted at random while jobs flow; checks that no
//!   payment is lost or made twice and that every node's balances equal a replay of its log
//!   (docs/chaos.md). `test` ends with a one-minute run.
//! - `bench [sandbox|ledger|net|contracts|js]`: every benchmark, or the one named; the sandbox,
//!   contracts and js benchmarks build the guests first (figures go to docs/PERFORMANCE.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

mod chaos;
mod cycles;
#[path = "../../js-runtime/builder.rs"]
mod js_runtime;

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "guests" => guests().map(|_| ()),
        "test" => test(),
        "cycles" => cycles::check(&root()),
        "demo" => demo(std::env::args().nth(2).as_deref() == Some("--keep")),
        "bench" => bench(std::env::args().nth(2).as_deref()),
        "chaos" => chaos::run(&std::env::args().skip(2).collect::<Vec<_>>()),
        _ => {
            eprintln!(
                "usage: cargo xtask <guests|test|cycles|demo [--keep]|chaos --minutes N [--seed S]|bench [{}]>",
                BENCHES.join("|")
            );
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
    js_runtime::ensure_wasm_target().map_err(anyhow::Error::msg)
}

/// Builds the example guests and the JavaScript runtime (`js.wasm`, the same build
/// `host/build.rs` embeds in `cue`); returns the directory holding `<name>.wasm`.
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
    // The float guests again with WebAssembly SIMD (`simd128`), as a float-heavy job would be
    // built: the benchmarks compare both builds (docs/PERFORMANCE.md).
    let simd_dir = root.join("target/guests-build-simd");
    run(cargo()
        .current_dir(root.join("examples-guests"))
        .env("RUSTFLAGS", "-C target-feature=+simd128")
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "numeric",
            "-p",
            "nbody",
            "--target-dir",
        ])
        .arg(&simd_dir))?;
    for name in ["numeric", "nbody"] {
        let built = simd_dir.join(format!("wasm32-wasip2/release/{name}.wasm"));
        std::fs::copy(&built, out.join(format!("{name}-simd.wasm")))?;
        names.push(format!("{name}-simd"));
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
    let cargo_path = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let runtime = js_runtime::build(&root, &root.join("target"), &cargo_path).map_err(anyhow::Error::msg)?;
    std::fs::copy(&runtime, out.join("js.wasm"))?;
    names.push("js".into());
    names.sort();
    eprintln!("guests in {}: {}", out.display(), names.join(", "));
    Ok(out)
}

fn test() -> Result<()> {
    guests()?;
    browser()?;
    run(cargo().current_dir(root()).args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(root().join("examples-guests")).args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(root().join("js-runtime")).args(["fmt", "--all", "--check"]))?;
    cycles::check(&root())?;
    run(cargo().current_dir(root()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().current_dir(root()).args(["test", "--workspace"]))?;
    chaos::run(&["--minutes".into(), "1".into()])
}

/// Chromium and chromedriver for the dashboard's browser tests (`tests/all/dashboard_browser.rs`):
/// Debian's packages, installed with apt-get when `chromedriver` is not on the PATH.
fn browser() -> Result<()> {
    let found = Command::new("chromedriver").arg("--version").output().is_ok_and(|o| o.status.success());
    if found {
        return Ok(());
    }
    eprintln!("chromedriver not found: installing Debian's chromium and chromium-driver");
    let as_root = |args: &[&str]| {
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
        let mut command = if root { Command::new(args[0]) } else { Command::new("sudo") };
        if root {
            command.args(&args[1..]);
        } else {
            command.args(args);
        }
        command.env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run(&mut as_root(&["apt-get", "update"]))?;
    run(&mut as_root(&["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]))
}

/// The benchmarks of `cue-host` (`host/benches/<name>.rs`), in the order `bench` runs them.
const BENCHES: [&str; 5] = ["sandbox", "ledger", "net", "contracts", "js"];

fn bench(only: Option<&str>) -> Result<()> {
    let selected = match only {
        None => BENCHES.to_vec(),
        Some(name) if BENCHES.contains(&name) => vec![name],
        Some(name) => bail!("unknown benchmark `{name}`: one of {}", BENCHES.join(", ")),
    };
    for name in selected {
        if ["sandbox", "contracts", "js"].contains(&name) {
            guests()?;
        }
        run(cargo().current_dir(root()).args(["bench", "-p", "cue-host", "--bench", name]))?;
    }
    Ok(())
}

fn demo(keep: bool) -> Result<()> {
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
        ("hostile-sleep", "run()"),
        ("hostile-subscribe-forever", "run()"),
        ("hostile-poll-list", "run()"),
        ("hostile-busy-ready", "run()"),
        ("hostile-busy-ready", "ready-after(1000000)"),
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
    network_demo(&cue, &guests, keep)
}

/// A `cue node` process of the network demo; stopped with SIGTERM when dropped.
struct DemoNode {
    data_dir: PathBuf,
    child: std::process::Child,
    listen: String,
    /// Its dashboard's address, token in the fragment (`dashboard: …` in its output).
    dashboard: String,
}

impl DemoNode {
    fn start(cue: &Path, name: &'static str, args: &[&str]) -> Result<DemoNode> {
        use std::io::BufRead as _;
        let data_dir = demo_dir(name);
        println!("\n$ cue --data-dir {name} node --listen /ip4/127.0.0.1/tcp/0 {}", args.join(" "));
        let mut child = Command::new(cue)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("node stdout")?;
        let mut node = DemoNode { data_dir, child, listen: String::new(), dashboard: String::new() };
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            println!("  {line}");
            if let Some(addr) = line.strip_prefix("listening on ") {
                node.listen = addr.to_owned();
            }
            if let Some(url) = line.strip_prefix("dashboard: ") {
                node.dashboard = url.to_owned();
            }
            if line == "ready" {
                return Ok(node);
            }
        }
        bail!("node {name} exited before it was ready")
    }
}

impl Drop for DemoNode {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Where a demo node keeps its files.
fn demo_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("cue-demo-{}-{name}", std::process::id()))
}

/// `arg` as a shell would need it typed: in single quotes when it holds anything but plain
/// characters.
fn shell_quoted(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@^./_=:-+,".contains(c);
    match arg.chars().all(plain) && !arg.is_empty() {
        true => arg.to_owned(),
        false => format!("'{}'", arg.replace('\'', r"'\''")),
    }
}

/// Runs `cue` on a demo data dir and prints what it says.
fn show(cue: &Path, name: &str, args: &[&str]) -> Result<std::process::Output> {
    let typed: Vec<String> = args.iter().map(|arg| shell_quoted(arg)).collect();
    println!("\n$ cue --data-dir {name} {}", typed.join(" "));
    let output = Command::new(cue).arg("--data-dir").arg(demo_dir(name)).args(args).output()?;
    print!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok(output)
}

fn balances(cue: &Path, peers: &[(&str, String)]) -> Result<()> {
    for (name, peer) in peers {
        let output = Command::new(cue)
            .arg("--data-dir")
            .arg(demo_dir("consumer"))
            .args(["wallet", "balance", peer, "--json"])
            .output()?;
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        println!("  {name:<11} {:>12}", json["balance"]);
    }
    Ok(())
}

/// The whole story on one machine: a genesis, three providers and a consumer as processes on
/// 127.0.0.1, components published, jobs submitted (one replicated against a provider that
/// lies on purpose), receipts, payments, balances and reputations.
fn network_demo(cue: &Path, guests: &Path, keep: bool) -> Result<()> {
    println!("\n== the network: a genesis, three providers and a consumer on 127.0.0.1 ==");
    let consumer_dir = demo_dir("consumer");
    let id = Command::new(cue).arg("--data-dir").arg(&consumer_dir).args(["id", "--json"]).output()?;
    let id: serde_json::Value = serde_json::from_slice(&id.stdout).context("cue id --json")?;
    let consumer_id = id["peer_id"].as_str().context("a peer id")?.to_owned();
    let genesis = consumer_dir.join("genesis.toml");
    let genesis_arg = genesis.to_string_lossy().into_owned();
    let alloc = format!("{consumer_id}=1000000");
    show(cue, "consumer", &["network", "init", "--out", &genesis_arg, "--alloc", &alloc])?;
    let provide = |extra: &[&'static str], boot: Option<&str>| {
        let mut args =
            vec!["--provide", "--genesis", &genesis_arg, "--price-per-mfuel", "2", "--base-fee", "3"];
        args.extend_from_slice(extra);
        if let Some(boot) = boot {
            args.extend(["--bootstrap", boot]);
        }
        args.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let start = |name, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        DemoNode::start(cue, name, &args)
    };
    let first = start("provider-1", provide(&[], None))?;
    let boot = first.listen.clone();
    let second = start("provider-2", provide(&[], Some(&boot)))?;
    let liar = start("provider-3", provide(&["--fault-injection", "overstate-fuel"], Some(&boot)))?;
    println!(
        "  (provider-3 runs with --fault-injection overstate-fuel: its receipts claim more fuel than used)"
    );
    let consumer = DemoNode::start(cue, "consumer", &["--genesis", &genesis_arg, "--bootstrap", &boot])?;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(30) {
        let output = Command::new(cue)
            .arg("--data-dir")
            .arg(&consumer.data_dir)
            .args(["providers", "--json"])
            .output()?;
        let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        if list.as_array().map_or(0, Vec::len) == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    show(cue, "consumer", &["providers"])?;
    for (name, file) in [("fib", "fib"), ("hash", "hash"), ("wordcount", "wordcount"), ("nbody", "nbody")] {
        let path = guests.join(format!("{file}.wasm")).to_string_lossy().into_owned();
        show(cue, "provider-2", &["publish", &path, "--name", name, "--version", "1.0.0"])?;
    }
    let peers = [
        ("consumer", consumer_id.clone()),
        ("provider-1", peer_of(&first.listen)),
        ("provider-2", peer_of(&second.listen)),
        ("provider-3", peer_of(&liar.listen)),
    ];
    println!("\nbalances before:");
    balances(cue, &peers)?;
    show(cue, "consumer", &["submit", "fib@^1", "fib(90)", "--provider", &peers[1].1])?;
    show(
        cue,
        "consumer",
        &["submit", "hash@^1", "sha256-string(\"hello, cue\")", "--provider", &peers[2].1],
    )?;
    show(cue, "consumer", &["submit", "wordcount@1", "count-words(\"the cat and the hat\")"])?;
    show(cue, "consumer", &["submit", "fib@1", "fib(1000000)", "--max-fuel", "500000"])?;
    show(cue, "consumer", &["submit", "nbody@1", "energy-after(100000)", "--replicas", "3"])?;
    println!(
        "\n== the origin's job: a function as JavaScript text, with JSON arguments and an offer of 15 =="
    );
    show(cue, "consumer", &["publish", "--js"])?;
    show(cue, "consumer", &["submit", "--js", "(a, b) => a * b", "--args", "[5, 10]", "--pay", "15"])?;
    show(
        cue,
        "consumer",
        &["submit", "--js", "(n) => { throw new RangeError(`no ${n}`) }", "--args", "[7]", "--pay", "15"],
    )?;
    println!("\nbalances after (the consumer's ledger; the same on every node):");
    balances(cue, &peers)?;
    show(cue, "consumer", &["providers"])?;
    show(cue, "consumer", &["jobs"])?;
    println!("\ndashboards (each node serves its own; the token is in the fragment):");
    for (name, node) in
        [("provider-1", &first), ("provider-2", &second), ("provider-3", &liar), ("consumer", &consumer)]
    {
        println!("  {name:<11} {}", node.dashboard);
    }
    if keep {
        println!("\nthe nodes run until you press Enter");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
    } else {
        println!("(`cargo xtask demo --keep` keeps the nodes up to open them)");
    }
    drop((first, second, liar, consumer));
    Ok(())
}

/// The peer id at the end of a `/p2p/<id>` address.
fn peer_of(addr: &str) -> String {
    addr.rsplit('/').next().unwrap_or_default().to_owned()
}
