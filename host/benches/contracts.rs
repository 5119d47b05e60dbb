//! Contracts end to end, on warm connections between two in-process nodes on 127.0.0.1:
//! request → accept → run → receipt → payment stored (the consumer's `submit` returns after
//! the payment is durable in its ledger and acknowledged by the provider). The baseline, in the
//! same run, is the same call through the sandbox as `cue run` makes it (warm: compiled code
//! cached, fresh instance per call). Run: `cargo bench -p cue-host --bench contracts` (after
//! `cargo xtask guests`). Results: docs/PERFORMANCE.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cue_host::benchmark::Plan;
use cue_host::crypto::Keypair;
use cue_host::datadir::DataDir;
use cue_host::ledger::Genesis;
use cue_host::market::ProviderPolicy;
use cue_host::node::{Node, NodeConfig, ProviderSettings, SubmitOptions};
use cue_host::sandbox::{Invocation, Limits, Sandbox, SandboxConfig};

const SEQUENTIAL: usize = 200;
const CONCURRENT_TASKS: usize = 32;
const CONCURRENT_JOBS: usize = 1_000;

fn guest(name: &str) -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guests").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing: run `cargo xtask guests`", path.display()))
}

/// CPU time this process has used (user + system), from `/proc/self/stat` (clock ticks of
/// 10 ms: meaningful over the hundreds of milliseconds each phase takes).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) comes first: utime (14) and stime (15) are at 11 and 12.
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn sandbox_baseline(bytes: &[u8]) -> (Duration, Duration) {
    let sandbox = Sandbox::new(SandboxConfig { max_concurrent_jobs: 4, ..SandboxConfig::default() }).unwrap();
    let loaded = sandbox.load(bytes).unwrap();
    let call = loaded.parse_call("triple(14)").unwrap();
    let limits = Limits::default();
    let times = (0..SEQUENTIAL * 5)
        .map(|_| {
            let started = Instant::now();
            let outcome = loaded.invoke(&call, &limits, &Invocation::default());
            assert!(outcome.result.is_ok());
            started.elapsed()
        })
        .collect();
    percentiles(times)
}

fn options(provider: cue_host::crypto::PeerId) -> SubmitOptions {
    SubmitOptions {
        reference: "triple@1".into(),
        call: "triple(14)".into(),
        offer: None,
        max_fuel: Some(1_000_000),
        max_memory_bytes: 16 << 20,
        timeout: Duration::from_secs(5),
        replicas: 1,
        provider: Some(provider),
        max_attempts: 1,
        audit_fuel: cue_host::node::DEFAULT_AUDIT_FUEL,
    }
}

/// Async worker threads of the runtime both nodes share: `CUE_BENCH_WORKERS`, default 2 (their
/// ledger writers, sandbox runs and timers have threads of their own; docs/PERFORMANCE.md
/// compares 1 and 2).
fn workers() -> usize {
    std::env::var("CUE_BENCH_WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(2)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers()).enable_all().build().unwrap()
}

fn main() {
    let runtime = runtime();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let bytes = guest("wat-triple");
    let dirs = tempfile::tempdir().unwrap();
    let (provider_dir, consumer_dir) = (dirs.path().join("provider"), dirs.path().join("consumer"));
    std::fs::create_dir_all(&consumer_dir).unwrap();
    let consumer_data = DataDir::resolve(Some(consumer_dir));
    let (consumer_key, _) = Keypair::load_or_create(&consumer_data.identity_key()).unwrap();
    let genesis = Genesis {
        network_id: "bench".into(),
        mint_authority: consumer_key.public(),
        allocations: [(consumer_key.public(), u64::MAX / 4)].into_iter().collect(),
    };
    let small =
        SandboxConfig { max_concurrent_jobs: 64, max_memory_bytes: 64 << 20, ..SandboxConfig::default() };
    let mut config = NodeConfig::loopback(DataDir::resolve(Some(provider_dir)), vec![]);
    config.sandbox = small.clone();
    config.genesis = Some(genesis.clone());
    config.provide = Some(ProviderSettings {
        policy: ProviderPolicy {
            price_per_mfuel: 1,
            base_fee: 1,
            max_concurrent_jobs: 64,
            max_memory_bytes: 64 << 20,
            max_execution_ms: 10_000,
        },
        plan: Plan { rounds: 10_000, runs: 1 },
        manifest_lifetime: Duration::from_secs(3600),
        min_reputation: 0.0,
        fault: None,
        pay_grace: Duration::from_secs(60),
        allowed_publishers: Vec::new(),
    });
    let provider = runtime.block_on(async {
        let provider = Node::start(config).await.unwrap();
        provider.handle().publish(bytes.clone(), "triple", "1.0.0").await.unwrap();
        provider
    });
    let mut config = NodeConfig::loopback(consumer_data, provider.listen_addrs());
    config.sandbox = small;
    config.genesis = Some(genesis);
    let consumer = runtime.block_on(Node::start(config)).unwrap();
    let c = consumer.handle();
    let target = provider.peer_id();
    let (p50, p99, sequential_cpu, throughput, concurrent_cpu, failed) = runtime.block_on(measure(c, target));
    let (base50, base99) = sandbox_baseline(&bytes);

    println!(
        "contracts end to end (wat-triple `triple(14)`, two nodes on 127.0.0.1, warm connections, {} async thread(s))",
        workers()
    );
    println!("  sequential job  p50 {:>9.3?}  p99 {:>9.3?}   ({SEQUENTIAL} jobs)", p50, p99);
    println!(
        "  CPU per job (both nodes, user + system): sequential {sequential_cpu:.2?}, concurrent {concurrent_cpu:.2?}"
    );
    println!("  same call, sandbox only (as `cue run`, warm)  p50 {:>9.3?}  p99 {:>9.3?}", base50, base99);
    println!("  network + contract overhead: p50 ratio {:.0}×", p50.as_secs_f64() / base50.as_secs_f64());
    println!(
        "  throughput with {CONCURRENT_TASKS} concurrent submissions: {throughput:.0} jobs/s ({CONCURRENT_JOBS} jobs, {failed} failed)"
    );
    runtime.block_on(consumer.shutdown());
    runtime.block_on(provider.shutdown());
}

/// The sequential and the concurrent phase: (p50, p99, CPU per job, jobs/s, CPU per job,
/// failures).
async fn measure(
    c: cue_host::node::NodeHandle,
    target: cue_host::crypto::PeerId,
) -> (Duration, Duration, Duration, f64, Duration, usize) {
    for _ in 0..20 {
        c.submit(options(target), |_, _| {}).await.expect("warm-up job");
    }

    let mut times = Vec::with_capacity(SEQUENTIAL);
    let cpu_before = cpu_time();
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        let report = c.submit(options(target), |_, _| {}).await.unwrap();
        times.push(started.elapsed());
        assert_eq!(report.wave.as_deref(), Some("42"));
    }
    let sequential_cpu = (cpu_time() - cpu_before) / SEQUENTIAL as u32;
    let (p50, p99) = percentiles(times);

    let started = Instant::now();
    let cpu_before = cpu_time();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONCURRENT_TASKS)
        .map(|_| {
            let (c, next) = (c.clone(), next.clone());
            tokio::spawn(async move {
                let mut failed = 0;
                while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < CONCURRENT_JOBS {
                    if let Err(e) = c.submit(options(target), |_, _| {}).await {
                        if failed == 0 {
                            eprintln!("a concurrent job failed: {e}");
                        }
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for worker in workers {
        failed += worker.await.unwrap();
    }
    let throughput = CONCURRENT_JOBS as f64 / started.elapsed().as_secs_f64();
    let concurrent_cpu = (cpu_time() - cpu_before) / CONCURRENT_JOBS as u32;
    (p50, p99, sequential_cpu, throughput, concurrent_cpu, failed)
}
