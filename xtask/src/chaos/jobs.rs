//! The jobs of a chaos run: one thread per consumer submits `fib(n)` (n drawn from the seed)
//! through `cue submit` one after another until told to stop, and checks each result against
//! `fib` computed here. A submit made while its consumer's node is down fails at once; those
//! are counted apart from the failures of a running node.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Rng;
use super::cluster::run_cue;

/// The submit's options: a small fuel budget keeps the worst case (base fee + price × max
/// fuel) within the offer.
const SUBMIT: [&str; 9] =
    ["--json", "--max-fuel", "1000000", "--pay", "2000", "--timeout", "5s", "--attempts", "3"];

/// What the submissions of a run came to.
#[derive(Default)]
pub struct JobFigures {
    /// Jobs that returned the right result with a receipt.
    pub completed: u64,
    /// Jobs whose result was not `fib(n)`.
    pub wrong: u64,
    /// Submissions that failed on a running node, by the first line of their error.
    pub failed: BTreeMap<String, u64>,
    /// Submissions refused because the consumer's node was down.
    pub node_down: u64,
}

impl JobFigures {
    fn merge(&mut self, other: JobFigures) {
        self.completed += other.completed;
        self.wrong += other.wrong;
        self.node_down += other.node_down;
        for (reason, count) in other.failed {
            *self.failed.entry(reason).or_default() += count;
        }
    }

    /// Failed submissions on running nodes.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// `fib(n)` as the guest computes it (fib(0) = 0, fib(1) = 1).
fn fib(n: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a
}

/// Starts one submitting thread per consumer `(name, data dir)`.
pub fn start(
    cue: &Path,
    consumers: Vec<(String, PathBuf)>,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Vec<JoinHandle<JobFigures>> {
    consumers
        .into_iter()
        .enumerate()
        .map(|(i, (_, data_dir))| {
            let (cue, stop) = (cue.to_owned(), stop.clone());
            let mut rng = Rng::new(seed ^ (0x5eed_0000 + i as u64));
            std::thread::spawn(move || submit_until(&cue, &data_dir, &mut rng, &stop))
        })
        .collect()
}

/// Waits for every submitting thread and adds up their figures.
pub fn join(threads: Vec<JoinHandle<JobFigures>>) -> JobFigures {
    let mut all = JobFigures::default();
    for thread in threads {
        if let Ok(figures) = thread.join() {
            all.merge(figures);
        }
    }
    all
}

fn submit_until(cue: &Path, data_dir: &Path, rng: &mut Rng, stop: &AtomicBool) -> JobFigures {
    let mut figures = JobFigures::default();
    while !stop.load(Ordering::SeqCst) {
        let n = rng.range(5, 40) as u32;
        let call = format!("fib({n})");
        let mut args = vec!["submit", "fib@^1", call.as_str()];
        args.extend(SUBMIT);
        let Ok(output) = run_cue(cue, data_dir, &args) else { continue };
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() && report["result"].as_u64().is_some() {
            if report["result"].as_u64() == Some(fib(n)) {
                figures.completed += 1;
            } else {
                figures.wrong += 1;
            }
        } else if stderr.contains("no node is running") || stderr.contains("does not answer") {
            figures.node_down += 1;
            std::thread::sleep(Duration::from_millis(200));
        } else {
            let reason = report["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| stderr.lines().next().unwrap_or("no answer").to_owned());
            *figures.failed.entry(shorten(&reason)).or_default() += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    figures
}

/// A failure reason without its hashes and figures, so that like failures count together.
fn shorten(reason: &str) -> String {
    let words: Vec<&str> = reason
        .split_whitespace()
        .filter(|w| !(w.len() > 20 || w.chars().any(|c| c.is_ascii_digit())))
        .take(12)
        .collect();
    words.join(" ")
}
