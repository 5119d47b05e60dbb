//! Network benchmarks with real nodes on loopback (TCP, noise, yamux, the Kademlia DHT), each
//! against a baseline measured in the same run where there is one. Run: `cargo xtask bench net`
//! (or `cargo bench -p cue-host --bench net [-- discovery|blob|memory]`). Results:
//! docs/PERFORMANCE.md.
//!
//! 1. Discovery: 50 in-process provider nodes joined through node 0; each round a fresh
//!    consumer joins and sweeps `providers()` until it lists all 50 (goal: p50 ≤ 1 s).
//! 2. Blob transfer: a 16 MiB blob fetched by hash (`sha256:<hex>`) from the node holding it,
//!    vs a plain TCP copy over 127.0.0.1 and vs TCP with the blob store's work on both ends.
//! 3. Idle memory: RSS of `cue node` processes, plain and `--provide` (the binary this bench
//!    was built with: `target/release/cue` under `cargo bench`).
//!
//! `RUST_LOG=cue_host=debug` shows the nodes' logs on stderr.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use cue_host::benchmark::Plan;
use cue_host::crypto::{Digest, Keypair, PeerId};
use cue_host::datadir::DataDir;
use cue_host::market::ProviderPolicy;
use cue_host::net::{DhtKey, Multiaddr, NetConfig, RecordValidator};
use cue_host::node::{Node, NodeConfig, NodeHandle, ProviderSettings};
use cue_host::sandbox::SandboxConfig;
use cue_host::store::BlobStore;
use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Providers in the discovery network.
const PROVIDERS: usize = 50;
/// Nodes started at once while building the network (2 cores).
const START_CONCURRENCY: usize = 4;
/// Fresh consumers, each timing its sweeps.
const DISCOVERY_ROUNDS: usize = 10;
/// A consumer that has not seen every provider by then gives up (and the round counts as missed).
const SWEEP_GIVE_UP: Duration = Duration::from_secs(12);
/// How long the idle network's CPU use is sampled.
const IDLE_SAMPLE: Duration = Duration::from_secs(3);
/// The blob fetched in the transfer benchmark.
const BLOB_BYTES: usize = 16 << 20;
/// Transfers of each kind, interleaved.
const BLOB_ROUNDS: usize = 5;
/// The node's blob protocol reads and writes in chunks of this size; the baseline does too.
const CHUNK: usize = 64 * 1024;
/// `cue node` processes of each kind in the memory benchmark.
const PROCESSES: usize = 5;
/// How long the processes run before their memory is read.
const SETTLE: Duration = Duration::from_secs(5);

/// A small sandbox: many nodes share this process.
fn sandbox() -> SandboxConfig {
    SandboxConfig { max_concurrent_jobs: 2, max_memory_bytes: 64 << 20, ..SandboxConfig::default() }
}

/// A provider that measures itself quickly (340,000 fuel, one run).
fn provider_settings() -> ProviderSettings {
    ProviderSettings {
        policy: ProviderPolicy {
            price_per_mfuel: 10,
            base_fee: 0,
            max_concurrent_jobs: 2,
            max_memory_bytes: 64 << 20,
            max_execution_ms: 10_000,
        },
        plan: Plan { rounds: 10_000, runs: 1 },
        manifest_lifetime: Duration::from_secs(3600),
        min_reputation: 0.0,
        fault: None,
        pay_grace: Duration::from_secs(60),
        allowed_publishers: Vec::new(),
    }
}

async fn start_node(dir: PathBuf, bootstrap: Vec<Multiaddr>, provide: bool) -> Node {
    let mut config = NodeConfig::loopback(DataDir::resolve(Some(dir.clone())), bootstrap);
    config.sandbox = sandbox();
    config.provide = provide.then(provider_settings);
    Node::start(config).await.unwrap_or_else(|e| panic!("node in {}: {e}", dir.display()))
}

/// Data directories on the real disk (`target/tmp`), never a tmpfs.
fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

/// Sorted samples → the sample at quantile `q`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// CPU time this process has used, all threads (`/proc/self/stat`, in USER_HZ = 100 ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name (which may hold spaces) — utime and stime are 14 and 15.
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let ticks: u64 = after_name.split(' ').skip(11).take(2).map(|f| f.parse::<u64>().unwrap_or(0)).sum();
    Duration::from_millis(ticks * 10)
}

/// Cores busy on average while `wall` passed and the process used `cpu`.
fn cores(cpu: Duration, wall: Duration) -> f64 {
    cpu.as_secs_f64() / wall.as_secs_f64()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// One consumer's view of the network: its sweeps until it listed every provider.
struct DiscoveryRound {
    /// The consumer's first `providers()` call, right after its start returned.
    first_sweep: Duration,
    /// How many providers that first call listed.
    first_found: usize,
    /// Calls until one listed every provider (or the round gave up).
    sweeps: usize,
    /// From the consumer's start returning to a sweep listing all providers.
    until_all: Option<Duration>,
    /// One more sweep by the same consumer, now connected to the providers.
    warm_sweep: Duration,
    warm_found: usize,
    /// Providers (by index) the last sweep before the warm one did not list.
    missing: Vec<usize>,
    /// Cores this process kept busy during the round (all nodes together; 2 available).
    cores: f64,
}

/// The providers' peer ids → their index (`provider-<index>`).
type Expected = BTreeMap<String, usize>;

/// One `providers()` call: how long it took and which providers it listed.
async fn sweep(handle: &NodeHandle) -> (Duration, HashSet<String>) {
    let started = Instant::now();
    let found = match handle.providers().await {
        Ok(views) => views.into_iter().map(|view| view.peer_id).collect(),
        Err(e) => {
            eprintln!("sweep failed: {e}");
            HashSet::new()
        }
    };
    (started.elapsed(), found)
}

async fn discovery_round(dir: PathBuf, bootstrap: Vec<Multiaddr>, expected: &Expected) -> DiscoveryRound {
    let consumer = start_node(dir, bootstrap, false).await;
    let handle = consumer.handle();
    let started = Instant::now();
    let cpu = cpu_time();
    let (first_sweep, mut found) = sweep(&handle).await;
    let (first_found, mut sweeps) = (found.len(), 1);
    while found.len() < PROVIDERS && started.elapsed() < SWEEP_GIVE_UP {
        found = sweep(&handle).await.1;
        sweeps += 1;
    }
    let until_all = (found.len() >= PROVIDERS).then(|| started.elapsed());
    let missing = expected.iter().filter(|(peer, _)| !found.contains(*peer)).map(|(_, i)| *i).collect();
    let (warm_sweep, warm) = sweep(&handle).await;
    let cores = cores(cpu_time() - cpu, started.elapsed());
    consumer.shutdown().await;
    DiscoveryRound {
        first_sweep,
        first_found,
        sweeps,
        until_all,
        warm_sweep,
        warm_found: warm.len(),
        missing,
        cores,
    }
}

async fn discovery() {
    let root = temp_dir();
    let rss_before = proc_status_kib(std::process::id(), "VmRSS");
    let setup = Instant::now();
    let first = start_node(root.path().join("provider-0"), Vec::new(), true).await;
    let bootstrap = first.listen_addrs();
    let mut providers: Vec<(usize, Node)> = futures::stream::iter(1..PROVIDERS)
        .map(|i| {
            let started = start_node(root.path().join(format!("provider-{i}")), bootstrap.clone(), true);
            async move { (i, started.await) }
        })
        .buffer_unordered(START_CONCURRENCY)
        .collect()
        .await;
    providers.push((0, first));
    let expected: Expected = providers.iter().map(|(i, node)| (node.peer_id().to_string(), *i)).collect();
    let started = setup.elapsed();
    let per_node = proc_status_kib(std::process::id(), "VmRSS").saturating_sub(rss_before) / PROVIDERS as u64;
    println!("\n## discovery: {PROVIDERS} providers on loopback, a fresh consumer per round");
    println!(
        "set-up: {PROVIDERS} provider nodes started in {} ({START_CONCURRENCY} at a time, each \
         measuring itself); this process grew by {} per node",
        ms(started),
        mib(per_node)
    );
    println!(
        "| round | first sweep | found | sweeps | until all {PROVIDERS} | warm sweep | found | cores busy \
         | missing (provider index) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rounds = Vec::new();
    for round in 0..DISCOVERY_ROUNDS {
        let dir = root.path().join(format!("consumer-{round}"));
        let r = discovery_round(dir, bootstrap.clone(), &expected).await;
        let until_all = r.until_all.map_or_else(|| format!("not within {SWEEP_GIVE_UP:?}"), ms);
        let missing: Vec<String> = r.missing.iter().map(usize::to_string).collect();
        println!(
            "| {round} | {} | {} | {} | {until_all} | {} | {} | {:.2} | {} |",
            ms(r.first_sweep),
            r.first_found,
            r.sweeps,
            ms(r.warm_sweep),
            r.warm_found,
            r.cores,
            missing.join(" ")
        );
        rounds.push(r);
    }
    summarize_discovery(&rounds);
    let (cpu, idle) = (cpu_time(), Instant::now());
    tokio::time::sleep(IDLE_SAMPLE).await;
    println!(
        "the {PROVIDERS} providers alone, idle: {:.2} cores busy over {IDLE_SAMPLE:?}",
        cores(cpu_time() - cpu, idle.elapsed())
    );
    futures::future::join_all(providers.into_iter().map(|(_, node)| node.shutdown())).await;
}

fn summarize_discovery(rounds: &[DiscoveryRound]) {
    let summary = |label: &str, mut times: Vec<Duration>| {
        times.sort();
        if times.is_empty() {
            println!("{label}: no samples");
            return;
        }
        println!(
            "{label}: p50 {}  p90 {}  max {}  ({} samples)",
            ms(quantile(&times, 0.5)),
            ms(quantile(&times, 0.9)),
            ms(times[times.len() - 1]),
            times.len()
        );
    };
    let complete_first = rounds.iter().filter(|r| r.first_found >= PROVIDERS).count();
    let missed = rounds.iter().filter(|r| r.until_all.is_none()).count();
    summary("time until all providers listed", rounds.iter().filter_map(|r| r.until_all).collect());
    summary("first sweep", rounds.iter().map(|r| r.first_sweep).collect());
    summary("warm sweep", rounds.iter().map(|r| r.warm_sweep).collect());
    println!(
        "first sweep complete in {complete_first} of {} rounds; {missed} rounds never saw all \
         {PROVIDERS}",
        rounds.len()
    );
}

/// Deterministic incompressible bytes (splitmix64).
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Where one fetch spent its time.
struct Fetch {
    /// `fetch` called → it returned.
    total: Duration,
    /// Until the first progress call: DHT lookup, connection, stream, the holder reading and
    /// re-verifying the blob, the size header.
    to_first_byte: Duration,
    /// First progress call → last byte received (hashed and written on the way).
    streaming: Duration,
}

async fn fetch_once(handle: &NodeHandle, digest: Digest) -> Fetch {
    let (mut first, mut last) = (None, None);
    let started = Instant::now();
    let report = handle
        .fetch(&format!("sha256:{digest}"), |received, total| {
            let now = Instant::now();
            first.get_or_insert(now);
            if received == total {
                last = Some(now);
            }
        })
        .await
        .expect("fetch the blob");
    let total = started.elapsed();
    assert_eq!(report.size, BLOB_BYTES as u64);
    assert_ne!(report.source, "local", "the fetcher must not have the blob yet");
    let (first, last) = (first.expect("progress"), last.expect("progress"));
    Fetch { total, to_first_byte: first - started, streaming: last - first }
}

/// The same bytes over plain TCP on 127.0.0.1: `write_all` on one end, `read_to_end` on the
/// other (connection set-up included).
async fn tcp_copy(blob: &[u8]) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let bytes = blob.to_vec();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        socket.write_all(&bytes).await.expect("send");
        socket.shutdown().await.expect("close");
    });
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let mut received = Vec::with_capacity(blob.len());
    socket.read_to_end(&mut received).await.expect("receive");
    let elapsed = started.elapsed();
    sender.await.expect("sender");
    assert_eq!(received.len(), blob.len());
    elapsed
}

/// Plain TCP with the node's blob-store work on both ends: the sender reads and re-verifies the
/// stored blob (`BlobStore::get`) and writes it in 64 KiB chunks; the receiver hashes and
/// writes each chunk (`BlobWriter`) and commits the blob durably (fsync, rename).
async fn tcp_store_copy(source: &BlobStore, digest: Digest, into: &Path) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let source = source.clone();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let bytes = source.get(&digest).expect("read the blob").expect("the blob is stored");
        for chunk in bytes.chunks(CHUNK) {
            socket.write_all(chunk).await.expect("send");
        }
        socket.shutdown().await.expect("close");
    });
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let store =
        BlobStore::open(into, 64 << 20, cue_host::store::DEFAULT_MAX_BLOB_STORE_BYTES).expect("blob store");
    let mut writer = store.writer(digest, BLOB_BYTES as u64).expect("writer");
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = socket.read(&mut buffer).await.expect("receive");
        if n == 0 {
            break;
        }
        writer.write(&buffer[..n]).expect("write");
    }
    writer.finish().expect("the blob checks");
    let elapsed = started.elapsed();
    sender.await.expect("sender");
    elapsed
}

/// Stores nothing for anyone: the raw-stream baseline needs no DHT.
struct NoRecords;

impl RecordValidator for NoRecords {
    fn accept_record(&self, _key: &DhtKey, _value: &[u8], _publisher: Option<&PeerId>) -> bool {
        false
    }
}

/// A bare Cue network endpoint on loopback (`cue_host::net`, no node on top); it stops when
/// the sender of `stop` is dropped.
async fn endpoint(stop: &tokio::sync::watch::Receiver<()>) -> cue_host::net::Client {
    let keypair = Keypair::generate().expect("keypair");
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    let config = NetConfig::new(listen, Vec::new(), Arc::new(NoRecords));
    let (client, events, event_loop) = cue_host::net::new(&keypair, config).expect("network");
    let mut stop = stop.clone();
    tokio::spawn(async move {
        let _events = events;
        event_loop.run(async move { while stop.changed().await.is_ok() {} }).await;
    });
    client
}

/// The same bytes over one libp2p stream (TCP, noise, yamux) between two bare endpoints,
/// 64 KiB writes and reads, nothing hashed or stored: what the transport itself costs. The
/// connection is up before the clock starts; opening the stream is timed.
async fn stream_copy(blob: &[u8]) -> Duration {
    const PROTOCOL: &str = "/cue-bench/bytes/1";
    let (stop, stopped) = tokio::sync::watch::channel(());
    let (server, client) = (endpoint(&stopped).await, endpoint(&stopped).await);
    let mut incoming = server.accept(PROTOCOL).expect("accept");
    let mut addrs = Vec::new();
    while addrs.is_empty() {
        addrs = server.listen_addrs().await.expect("listen addresses");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let bytes = blob.to_vec();
    let sender = tokio::spawn(async move {
        let (_, mut stream) = incoming.next().await.expect("a stream");
        for chunk in bytes.chunks(CHUNK) {
            stream.write_all(chunk).await.expect("send");
        }
        stream.close().await.expect("close");
    });
    let peer = client.dial(addrs[0].clone()).await.expect("dial");
    let started = Instant::now();
    let mut stream = client.open_stream(peer, PROTOCOL).await.expect("open stream");
    let (mut buffer, mut received) = (vec![0u8; CHUNK], 0);
    loop {
        let n = stream.read(&mut buffer).await.expect("receive");
        if n == 0 {
            break;
        }
        received += n;
    }
    let elapsed = started.elapsed();
    sender.await.expect("sender");
    assert_eq!(received, blob.len());
    drop(stop);
    elapsed
}

async fn blob_transfer() {
    let root = temp_dir();
    let blob = pseudo_random(BLOB_BYTES);
    let holder_dir = DataDir::resolve(Some(root.path().join("holder")));
    let holder_store =
        BlobStore::open(&holder_dir.blobs(), 64 << 20, cue_host::store::DEFAULT_MAX_BLOB_STORE_BYTES)
            .expect("blob store");
    let digest = holder_store.put(&blob).expect("store the blob");
    let holder = start_node(root.path().join("holder"), Vec::new(), false).await;
    let bootstrap = holder.listen_addrs();
    let (mut fetches, mut plain, mut stored, mut streams) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so that machine noise hits all four alike.
    for round in 0..BLOB_ROUNDS {
        let fetcher =
            start_node(root.path().join(format!("fetcher-{round}")), bootstrap.clone(), false).await;
        fetches.push(fetch_once(&fetcher.handle(), digest).await);
        fetcher.shutdown().await;
        plain.push(tcp_copy(&blob).await);
        streams.push(stream_copy(&blob).await);
        stored.push(tcp_store_copy(&holder_store, digest, &root.path().join(format!("tcp-{round}"))).await);
    }
    holder.shutdown().await;
    let median = |mut times: Vec<Duration>| {
        times.sort();
        quantile(&times, 0.5)
    };
    let total = median(fetches.iter().map(|f| f.total).collect());
    let streaming = median(fetches.iter().map(|f| f.streaming).collect());
    let to_first_byte = median(fetches.iter().map(|f| f.to_first_byte).collect());
    let (plain, stored, streams) = (median(plain), median(stored), median(streams));
    println!(
        "\n## blob transfer: {} MiB, fresh fetcher per round (median of {BLOB_ROUNDS})",
        BLOB_BYTES >> 20
    );
    println!("| path | time | MB/s | throughput / plain TCP |");
    println!("|---|---|---|---|");
    let row = |label: &str, d: Duration| {
        let ratio = plain.as_secs_f64() / d.as_secs_f64();
        println!("| {label} | {} | {:.0} | {ratio:.2} |", ms(d), mb_per_s(BLOB_BYTES, d));
    };
    row("cue fetch(sha256:…), whole call", total);
    row("cue fetch, first byte → last byte", streaming);
    row("plain TCP copy", plain);
    row("libp2p stream (noise + yamux), nothing stored", streams);
    row("TCP + blob store on both ends", stored);
    let after = median(fetches.iter().map(|f| f.total - f.to_first_byte - f.streaming).collect());
    println!(
        "cue fetch until the first byte: {}; after the last byte (fsync, rename, DHT announcement): {}",
        ms(to_first_byte),
        ms(after)
    );
    println!(
        "throughput ratios: cue whole call / TCP + store {:.2}; cue first → last byte / libp2p stream \
         {:.2}",
        stored.as_secs_f64() / total.as_secs_f64(),
        streams.as_secs_f64() / streaming.as_secs_f64(),
    );
    let per_round: Vec<String> =
        fetches.iter().map(|f| format!("{:.0}", mb_per_s(BLOB_BYTES, f.total))).collect();
    println!("cue whole-call MB/s per round: {}", per_round.join(", "));
}

/// A `cue node` process; killed on drop if still running.
struct CueProcess {
    child: Child,
    listen: Vec<String>,
}

impl CueProcess {
    fn start(data_dir: &Path, bootstrap: Option<&str>, provide: bool) -> CueProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cue"));
        command.arg("--data-dir").arg(data_dir).args(["node", "--listen", "/ip4/127.0.0.1/tcp/0"]);
        if let Some(addr) = bootstrap {
            command.args(["--bootstrap", addr]);
        }
        if provide {
            command.args(["--provide", "--benchmark-rounds", "10000"]);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = command.spawn().expect("start `cue node`");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, incoming) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        let mut process = CueProcess { child, listen: Vec::new() };
        loop {
            match incoming.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(line)) if line == "ready" => return process,
                Ok(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        process.listen.push(addr.to_owned());
                    }
                }
                Ok(Err(e)) => panic!("reading `cue node`'s output: {e}"),
                Err(e) => panic!("`cue node` did not become ready: {e}"),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then up to 10 s for a clean stop before SIGKILL.
    fn stop(mut self) {
        let _ = Command::new("kill").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("`cue node` {} ignored SIGTERM; killing it", self.pid());
    }
}

impl Drop for CueProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn idle_memory() {
    let root = temp_dir();
    let first = CueProcess::start(&root.path().join("node-0"), None, false);
    let bootstrap = first.listen.first().cloned().expect("a listen address");
    let mut plain = vec![first];
    plain.extend(
        (1..PROCESSES)
            .map(|i| CueProcess::start(&root.path().join(format!("node-{i}")), Some(&bootstrap), false)),
    );
    let providers: Vec<CueProcess> = (0..PROCESSES)
        .map(|i| CueProcess::start(&root.path().join(format!("provider-{i}")), Some(&bootstrap), true))
        .collect();
    std::thread::sleep(SETTLE);
    println!(
        "\n## idle memory: `cue node` processes ({}), one network, {SETTLE:?} after the last was ready",
        env!("CARGO_BIN_EXE_cue")
    );
    println!("| kind | processes | RSS mean | RSS max | peak RSS (VmHWM) max |");
    println!("|---|---|---|---|---|");
    for (label, processes) in [("`cue node`", &plain), ("`cue node --provide`", &providers)] {
        let rss: Vec<u64> = processes.iter().map(|p| proc_status_kib(p.pid(), "VmRSS")).collect();
        let hwm = processes.iter().map(|p| proc_status_kib(p.pid(), "VmHWM")).max().unwrap_or(0);
        let mean = rss.iter().sum::<u64>() / rss.len() as u64;
        let max = rss.iter().copied().max().unwrap_or(0);
        println!("| {label} | {} | {} | {} | {} |", rss.len(), mib(mean), mib(max), mib(hwm));
    }
    for process in plain.into_iter().chain(providers) {
        process.stop();
    }
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if run("discovery") {
        runtime.block_on(discovery());
    }
    if run("blob") {
        runtime.block_on(blob_transfer());
    }
    if run("memory") {
        idle_memory();
    }
}
