//! `cargo xtask chaos --minutes N [--seed S]`: five providers, three consumers and one hostile
//! peer as processes on 127.0.0.1. Consumers submit jobs continuously (`cue submit`) while
//! providers and consumers are SIGKILLed and restarted at random (a seeded generator: the seed
//! is printed, and `--seed` runs the same schedule of faults again), and the hostile peer
//! (`cue debug hostile`) floods requests, forges gossip and stalls streams. Then every node is
//! up again, the payments settle, and `checks` prints and checks the figures; the task fails
//! when a check does. Bounded: the run, each command (60 s), each start (90 s) and the settling
//! (`checks::SETTLE_WITHIN`) have limits; every process is killed and the scratch dir removed
//! on the way out, failed or not.

mod checks;
mod cluster;
mod jobs;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use cluster::{Cluster, Role, Scratch};

/// Providers, consumers: as issue 19 asks.
const PROVIDERS: usize = 5;
const CONSUMERS: usize = 3;
/// Each consumer's genesis allocation.
const ALLOCATION: u64 = 1_000_000_000_000;
/// Nodes down at once at most (the others keep the market running).
const MAX_DOWN: usize = 2;
/// Hostile attacks per second.
const HOSTILE_RATE: u32 = 20;

/// A small seeded generator (SplitMix64): the same seed, the same faults.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[low, high)`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }
}

/// The run's options.
struct Options {
    minutes: f64,
    seed: u64,
}

fn options(args: &[String]) -> Result<Options> {
    let mut options = Options { minutes: 1.0, seed: 0 };
    let mut seed = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--minutes" => options.minutes = value.parse().context("--minutes: a number")?,
            "--seed" => seed = Some(value.parse().context("--seed: an integer")?),
            other => bail!("unknown option {other}: cargo xtask chaos --minutes N [--seed S]"),
        }
    }
    if !(options.minutes > 0.0 && options.minutes <= 24.0 * 60.0) {
        bail!("--minutes must be in (0, 1440]");
    }
    options.seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    Ok(options)
}

/// Sets a flag when dropped: the job threads stop on the way out, failed or not.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The hostile peer's process; killed when dropped.
struct Hostile(Option<std::process::Child>);

impl Drop for Hostile {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the chaos task (see the module docs).
pub fn run(args: &[String]) -> Result<()> {
    let options = options(args)?;
    let guests = super::guests()?;
    super::run(super::cargo().current_dir(super::root()).args(["build", "--quiet", "-p", "cue-host"]))?;
    let scratch = Scratch(std::env::temp_dir().join(format!("cue-chaos-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)?;
    // A copy of its own, so a build during a long run does not change the nodes under it.
    let cue = scratch.0.join("cue");
    std::fs::copy(super::root().join("target/debug/cue"), &cue)?;
    println!(
        "chaos: {} min, seed {} (run it again with --seed {})",
        options.minutes, options.seed, options.seed
    );
    let mut cluster = Cluster::prepare(&cue, &scratch.0, PROVIDERS, CONSUMERS, ALLOCATION)?;
    for i in 0..cluster.nodes.len() {
        cluster.start(i)?;
    }
    let fib = guests.join("fib.wasm").display().to_string();
    cluster.json(0, &["publish", &fib, "--name", "fib", "--version", "1.0.0", "--json"])?;
    wait_for_market(&cluster)?;
    println!("chaos: {} nodes up on 127.0.0.1, fib@1.0.0 published; faults start", cluster.nodes.len());

    let duration = Duration::from_secs_f64(options.minutes * 60.0);
    let hostile = start_hostile(&cluster, &scratch, duration)?;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let consumers: Vec<(String, std::path::PathBuf)> = cluster
        .nodes
        .iter()
        .filter(|n| n.role == Role::Consumer)
        .map(|n| (n.name.clone(), n.data_dir.clone()))
        .collect();
    let submitters = jobs::start(&cue, consumers, options.seed, stop.clone());
    let mut rng = Rng::new(options.seed);
    let kills = inject_faults(&mut cluster, &mut rng, duration)?;
    stop.store(true, Ordering::SeqCst);
    let jobs = jobs::join(submitters);
    for i in 0..cluster.nodes.len() {
        if !cluster.nodes[i].is_up() {
            cluster.start(i)?;
        }
    }
    let hostile = finish_hostile(hostile)?;
    println!("chaos: faults stopped, every node up again; settling");
    let figures = checks::settle_and_check(&cluster, CONSUMERS as u64 * ALLOCATION)?;
    let failed = checks::print(&options_line(&options), &jobs, &kills, &hostile, &figures);
    drop(cluster);
    if !failed.is_empty() {
        bail!("chaos checks failed: {}", failed.join("; "));
    }
    Ok(())
}

fn options_line(options: &Options) -> String {
    format!("{} min, seed {}", options.minutes, options.seed)
}

/// Waits (at most 90 s) until every consumer sees at least three providers.
fn wait_for_market(cluster: &Cluster) -> Result<()> {
    let started = Instant::now();
    for (i, node) in cluster.nodes.iter().enumerate().filter(|(_, n)| n.role == Role::Consumer) {
        loop {
            let seen =
                cluster.json(i, &["providers", "--json"]).ok().and_then(|l| l.as_array().map(Vec::len));
            if seen.unwrap_or(0) >= 3 {
                break;
            }
            if started.elapsed() > Duration::from_secs(90) {
                bail!("{} found {seen:?} providers within 90 s", node.name);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(())
}

/// Kills counted by role, and the restarts that followed.
#[derive(Default)]
pub struct Kills {
    pub providers: u64,
    pub consumers: u64,
}

/// Until `duration` has passed: every 1–4 s, SIGKILLs a random provider or consumer (at most
/// [`MAX_DOWN`] down at once) and restarts it 0.5–5 s later on its data dir and port.
fn inject_faults(cluster: &mut Cluster, rng: &mut Rng, duration: Duration) -> Result<Kills> {
    let started = Instant::now();
    let mut kills = Kills::default();
    let mut down: Vec<(usize, Instant)> = Vec::new();
    let mut next_kill = started + Duration::from_millis(rng.range(1_000, 4_000));
    while started.elapsed() < duration {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = down.into_iter().partition(|(_, at)| *at <= now);
        down = waiting;
        for (i, _) in due {
            cluster.start(i)?;
            println!("  t+{:>6.1}s restarted {}", started.elapsed().as_secs_f64(), cluster.nodes[i].name);
        }
        if now >= next_kill && down.len() < MAX_DOWN {
            let up: Vec<usize> = (0..cluster.nodes.len()).filter(|i| cluster.nodes[*i].is_up()).collect();
            let victim = up[rng.range(0, up.len() as u64) as usize];
            cluster.kill(victim);
            match cluster.nodes[victim].role {
                Role::Provider => kills.providers += 1,
                Role::Consumer => kills.consumers += 1,
            }
            println!(
                "  t+{:>6.1}s SIGKILL   {}",
                started.elapsed().as_secs_f64(),
                cluster.nodes[victim].name
            );
            down.push((victim, now + Duration::from_millis(rng.range(500, 5_000))));
            next_kill = now + Duration::from_millis(rng.range(1_000, 4_000));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(kills)
}

/// Starts `cue debug hostile` against every node for `duration`.
fn start_hostile(cluster: &Cluster, scratch: &Scratch, duration: Duration) -> Result<Hostile> {
    let mut command = std::process::Command::new(&cluster.cue);
    command
        .arg("--data-dir")
        .arg(scratch.0.join("hostile"))
        .arg("--genesis")
        .arg(&cluster.genesis)
        .args(["debug", "hostile", "--for", &format!("{}ms", duration.as_millis())])
        .args(["--rate", &HOSTILE_RATE.to_string()]);
    for node in &cluster.nodes {
        command.args(["--target", &node.addr()]);
    }
    let child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn()?;
    Ok(Hostile(Some(child)))
}

/// Waits (at most 60 s past its time) for the hostile peer's report.
fn finish_hostile(mut hostile: Hostile) -> Result<serde_json::Value> {
    let child = hostile.0.take().context("the hostile peer")?;
    let output = cluster::wait_bounded(child, Duration::from_secs(60))?;
    if !output.status.success() {
        bail!("the hostile peer failed: {}", output.status);
    }
    serde_json::from_slice(&output.stdout).context("the hostile peer's report")
}
