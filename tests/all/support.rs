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

/// A sandbox small enough to run dozens of nodes in one test process.
pub fn small_sandbox_config() -> SandboxConfig {
    SandboxConfig { max_concurrent_jobs: 2, max_memory_bytes: 64 << 20, ..SandboxConfig::default() }
}

/// Provider settings with a quick (but real) benchmark.
pub fn quick_provider() -> cue_host::node::ProviderSettings {
    cue_host::node::ProviderSettings {
        policy: cue_host::market::ProviderPolicy {
            price_per_mfuel: 2,
            base_fee: 10,
            max_concurrent_jobs: 2,
            max_memory_bytes: 64 << 20,
            max_execution_ms: 10_000,
        },
        plan: cue_host::benchmark::Plan { rounds: 10_000, runs: 1 },
        manifest_lifetime: std::time::Duration::from_secs(3600),
        min_reputation: 0.0,
        fault: None,
        pay_grace: std::time::Duration::from_secs(60),
        allowed_publishers: Vec::new(),
    }
}

/// An in-process node on loopback with its own temp data dir (kept alive with the node).
pub struct TestNode {
    pub node: cue_host::node::Node,
    pub dir: tempfile::TempDir,
}

impl TestNode {
    /// Starts a node in `dir` joining through `bootstrap`; a provider when `provide`.
    pub async fn start_in(
        dir: tempfile::TempDir,
        bootstrap: &[cue_host::net::Multiaddr],
        provide: bool,
    ) -> TestNode {
        let data_dir = cue_host::datadir::DataDir::resolve(Some(dir.path().to_path_buf()));
        let mut config = cue_host::node::NodeConfig::loopback(data_dir, bootstrap.to_vec());
        config.sandbox = small_sandbox_config();
        config.provide = provide.then(quick_provider);
        let node = cue_host::node::Node::start(config).await.expect("node starts");
        TestNode { node, dir }
    }

    /// Starts a node with a ledger for `genesis` in a data dir whose key is `dir`'s.
    pub async fn start_with_ledger(
        dir: tempfile::TempDir,
        bootstrap: &[cue_host::net::Multiaddr],
        genesis: &cue_host::ledger::Genesis,
    ) -> TestNode {
        let data_dir = cue_host::datadir::DataDir::resolve(Some(dir.path().to_path_buf()));
        let mut config = cue_host::node::NodeConfig::loopback(data_dir, bootstrap.to_vec());
        config.sandbox = small_sandbox_config();
        config.genesis = Some(genesis.clone());
        let node = cue_host::node::Node::start(config).await.expect("node starts");
        TestNode { node, dir }
    }

    pub async fn start(bootstrap: &[cue_host::net::Multiaddr], provide: bool) -> TestNode {
        TestNode::start_in(tempfile::tempdir().expect("temp dir"), bootstrap, provide).await
    }

    pub fn handle(&self) -> cue_host::node::NodeHandle {
        self.node.handle()
    }

    pub fn addrs(&self) -> Vec<cue_host::net::Multiaddr> {
        self.node.listen_addrs()
    }

    /// Shuts the node down and gives back its data dir.
    pub async fn stop(self) -> tempfile::TempDir {
        self.node.shutdown().await;
        self.dir
    }
}

/// Polls `check` every 200 ms until it answers `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A `cue node` process with its own data dir; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct NodeProcess {
    pub cue: Cue,
    pub child: std::process::Child,
    pub peer_id: String,
    pub listen: Vec<String>,
    /// The dashboard's address as `cue node` printed it (`http://127.0.0.1:PORT/#token=…`).
    pub dashboard: String,
    logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl NodeProcess {
    /// Starts `cue node --listen /ip4/127.0.0.1/tcp/0 [extra]` and waits for `ready`.
    pub fn start(extra: &[&str]) -> NodeProcess {
        NodeProcess::start_with(Cue::new(), extra)
    }

    /// Like [`NodeProcess::start`], in the data dir of `cue`.
    pub fn start_with(cue: Cue, extra: &[&str]) -> NodeProcess {
        use std::io::{BufRead as _, Read as _};
        let mut child = cue
            .command()
            .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--benchmark-rounds", "10000"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn cue node");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("logs").push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut peer_id, mut listen, mut dashboard) = (String::new(), Vec::new(), String::new());
        loop {
            let line = received
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("cue node did not get ready; logs:\n{}", logs.lock().unwrap()));
            if let Some(id) = line.strip_prefix("peer id: ") {
                peer_id = id.to_owned();
            } else if let Some(addr) = line.strip_prefix("listening on ") {
                listen.push(addr.to_owned());
            } else if let Some(url) = line.strip_prefix("dashboard: ") {
                dashboard = url.to_owned();
            } else if line == "ready" {
                break;
            }
        }
        NodeProcess { cue, child, peer_id, listen, dashboard, logs }
    }

    /// Runs another `cue` command against this node's data dir.
    pub fn cue(&self, args: &[&str]) -> Output {
        self.cue.run(args)
    }

    /// Everything the node logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").clone()
    }

    /// The TCP port of the first listen address.
    pub fn tcp_port(&self) -> u16 {
        let addr = &self.listen[0];
        let port = addr.split("/tcp/").nth(1).and_then(|rest| rest.split('/').next()).expect("a tcp address");
        port.parse().expect("a port")
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (at most `limit`) for the process to end on its own — a crash point reached —
    /// and answers its exit status and its data dir, for a restart.
    pub fn crashed(mut self, limit: std::time::Duration) -> (std::process::ExitStatus, Cue) {
        let started = std::time::Instant::now();
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            assert!(started.elapsed() < limit, "the node did not stop; logs:\n{}", self.logs());
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        (status, std::mem::replace(&mut self.cue, Cue::new()))
    }

    /// Sends SIGTERM and waits (at most 20 s) for the process to exit; answers its status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(std::process::Stdio::null())
            .status();
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(20) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.terminate().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A temp data dir whose identity key exists already, and that key's peer id.
pub fn keyed_dir() -> (tempfile::TempDir, cue_host::crypto::PeerId) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = cue_host::datadir::DataDir::resolve(Some(dir.path().to_path_buf()));
    let (key, _) = cue_host::crypto::Keypair::load_or_create(&data_dir.identity_key()).expect("key");
    (dir, key.peer_id())
}

impl Cue {
    /// This data dir's peer id (creating its key).
    pub fn peer_id(&self) -> String {
        let output = self.run(&["id", "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("id JSON");
        json["peer_id"].as_str().expect("peer id").to_owned()
    }

    /// `cue <args> --json`, which must succeed, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.run(args);
        assert!(output.status.success(), "cue {args:?} failed: {}", stderr(&output));
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("cue {args:?}: not JSON ({e}): {}", stdout(&output)))
    }
}

/// A code cache holding the pre-initialised JavaScript runtime and its compiled code, made
/// once per test binary by the real `cue run --js` (pre-initialising takes seconds in a debug
/// build; see docs/PERFORMANCE.md). Tests copy it rather than pay that again.
fn warm_js_cache() -> &'static std::path::Path {
    static WARM: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    WARM.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = Command::new(env!("CARGO_BIN_EXE_cue"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["run", "--js", "() => 0"])
            .output()
            .expect("run cue");
        assert!(output.status.success(), "warming the JavaScript runtime failed: {}", stderr(&output));
        dir
    })
    .path()
}

impl Cue {
    /// A `cue` with a fresh data dir whose code cache already holds the JavaScript runtime.
    pub fn with_warm_js_cache() -> Self {
        let cue = Cue::new();
        let from = cue_host::datadir::DataDir::resolve(Some(warm_js_cache().to_path_buf())).code_cache();
        let to = cue_host::datadir::DataDir::resolve(Some(cue.data_dir.path().to_path_buf())).code_cache();
        std::fs::create_dir_all(&to).expect("cache dir");
        for entry in std::fs::read_dir(&from).expect("warm cache") {
            let entry = entry.expect("cache entry");
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy cache entry");
        }
        cue
    }
}

/// A sandbox whose code cache is the warm one (shared: entries are written atomically).
pub fn sandbox_with_warm_js_cache() -> Sandbox {
    let cache = cue_host::datadir::DataDir::resolve(Some(warm_js_cache().to_path_buf())).code_cache();
    Sandbox::new(SandboxConfig { cache_dir: Some(cache), ..SandboxConfig::default() }).expect("sandbox")
}

/// The JavaScript runtime embedded in `cue`, pre-initialised and loaded once for the whole
/// test binary from the warm cache (each call still runs on a fresh instance).
pub fn js_runtime() -> &'static cue_host::local::js::JsRuntime {
    struct Loaded {
        /// Keeps the engine (and its epoch ticker) alive as long as the runtime.
        _sandbox: Sandbox,
        runtime: cue_host::local::js::JsRuntime,
    }
    static LOADED: std::sync::OnceLock<Loaded> = std::sync::OnceLock::new();
    &LOADED
        .get_or_init(|| {
            let sandbox = sandbox_with_warm_js_cache();
            let runtime =
                cue_host::local::js::JsRuntime::load(&sandbox).expect("the JavaScript runtime loads");
            Loaded { _sandbox: sandbox, runtime }
        })
        .runtime
}

/// Runs JavaScript `code` on `args` (a JSON array) with `limits` on the shared runtime.
pub fn run_js_with(
    code: &str,
    args: &str,
    limits: cue_host::sandbox::Limits,
) -> cue_host::local::js::JsReport {
    let run = cue_host::local::js::JsRun { code: code.into(), args: args.into(), limits, repeat: 1 };
    js_runtime().run(&run)
}

/// Runs JavaScript `code` on `args` under the default limits.
pub fn run_js(code: &str, args: &str) -> cue_host::local::js::JsReport {
    run_js_with(code, args, cue_host::sandbox::Limits::default())
}
