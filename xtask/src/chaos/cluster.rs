//! The processes of a chaos run: `cue node` processes on fixed loopback ports (so a restarted
//! node is found where it was), each with its own data dir under one scratch dir; killed with
//! SIGKILL and started again on the same data dir and port. Every child is killed and waited
//! for when the cluster is dropped, and the scratch dir removed after, on success or failure.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// How long a node may take to print `ready`.
const READY_WITHIN: Duration = Duration::from_secs(90);
/// How long one `cue` command may take before it is killed.
const COMMAND_WITHIN: Duration = Duration::from_secs(60);

/// A provider or a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Provider,
    Consumer,
}

/// One node of the run: its name, data dir, port and peer id, and its process while it runs.
pub struct Node {
    pub name: String,
    pub role: Role,
    pub data_dir: PathBuf,
    pub port: u16,
    pub peer_id: String,
    child: Option<Child>,
}

impl Node {
    /// Its address, `/p2p/<peer id>` included.
    pub fn addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.port, self.peer_id)
    }

    /// Whether its process runs.
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }
}

/// Removes a directory when dropped.
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every node of the run, and how to start them.
pub struct Cluster {
    pub cue: PathBuf,
    pub genesis: PathBuf,
    pub nodes: Vec<Node>,
}

/// A free TCP port on 127.0.0.1 (the listener is closed at once; the node binds it next).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Cluster {
    /// Makes the data dirs and keys of `providers` providers and `consumers` consumers under
    /// `root`, and a genesis giving each consumer `allocation`. Starts nothing.
    pub fn prepare(
        cue: &Path,
        root: &Path,
        providers: usize,
        consumers: usize,
        allocation: u64,
    ) -> Result<Cluster> {
        let mut nodes = Vec::new();
        let roles = std::iter::repeat_n(Role::Provider, providers)
            .chain(std::iter::repeat_n(Role::Consumer, consumers));
        for (i, role) in roles.enumerate() {
            let name = match role {
                Role::Provider => format!("provider-{}", i + 1),
                Role::Consumer => format!("consumer-{}", i + 1 - providers),
            };
            let data_dir = root.join(&name);
            let id = run_cue(cue, &data_dir, &["id", "--json"])?;
            let id: serde_json::Value = serde_json::from_slice(&id.stdout).context("cue id --json")?;
            let peer_id = id["peer_id"].as_str().context("a peer id")?.to_owned();
            nodes.push(Node { name, role, data_dir, port: free_port()?, peer_id, child: None });
        }
        let genesis = root.join("genesis.toml");
        let mut init =
            vec!["network".to_owned(), "init".into(), "--out".into(), genesis.display().to_string()];
        for node in nodes.iter().filter(|n| n.role == Role::Consumer) {
            init.extend(["--alloc".into(), format!("{}={allocation}", node.peer_id)]);
        }
        let init: Vec<&str> = init.iter().map(String::as_str).collect();
        let output = run_cue(cue, &root.join("genesis-maker"), &init)?;
        if !output.status.success() {
            bail!("cue network init failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(Cluster { cue: cue.to_owned(), genesis, nodes })
    }

    /// Starts node `i` on its data dir and port, joining through every other node, and waits
    /// for it to be ready.
    pub fn start(&mut self, i: usize) -> Result<()> {
        let others: Vec<String> =
            self.nodes.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, n)| n.addr()).collect();
        let node = &self.nodes[i];
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(node.data_dir.join("node.log"))?;
        let mut command = Command::new(&self.cue);
        command
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--genesis")
            .arg(&self.genesis)
            .args(["node", "--listen", &format!("/ip4/127.0.0.1/tcp/{}", node.port)])
            .args(["--benchmark-rounds", "10000"]);
        for addr in &others {
            command.args(["--bootstrap", addr]);
        }
        if node.role == Role::Provider {
            command.args(["--provide", "--price-per-mfuel", "1000", "--base-fee", "5", "--max-jobs", "2"]);
        }
        let mut child = command.env("RUST_LOG", "warn").stdout(Stdio::piped()).stderr(log).spawn()?;
        let stdout = child.stdout.take().context("node stdout")?;
        let (ready, is_ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    let _ = ready.send(());
                }
            }
        });
        let name = node.name.clone();
        self.nodes[i].child = Some(child);
        if is_ready.recv_timeout(READY_WITHIN).is_err() {
            self.kill(i);
            bail!("{name} did not get ready within {READY_WITHIN:?} (see its node.log)");
        }
        Ok(())
    }

    /// Kills node `i` at once (SIGKILL), as a crash would, and waits for it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `cue` on node `i`'s data dir (killed after a minute).
    pub fn cue(&self, i: usize, args: &[&str]) -> Result<Output> {
        run_cue(&self.cue, &self.nodes[i].data_dir, args)
    }

    /// `cue <args> --json` on node `i`, which must succeed, parsed.
    pub fn json(&self, i: usize, args: &[&str]) -> Result<serde_json::Value> {
        let output = self.cue(i, args)?;
        if !output.status.success() {
            bail!("{}: cue {args:?} failed: {}", self.nodes[i].name, String::from_utf8_lossy(&output.stderr));
        }
        serde_json::from_slice(&output.stdout).with_context(|| format!("cue {args:?}: not JSON"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Runs `cue --data-dir <dir> <args>`, killing it after [`COMMAND_WITHIN`].
pub fn run_cue(cue: &Path, data_dir: &Path, args: &[&str]) -> Result<Output> {
    let child = Command::new(cue)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", cue.display()))?;
    wait_bounded(child, COMMAND_WITHIN)
}

/// Waits for a child's output, killing it (it is still our unreaped child, so its pid is
/// still its own) after `limit`.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Result<Output> {
    fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}
