//! JavaScript jobs (issue 20): the origin's example `(a, b) => a * b` on `[5, 10]`, each call on
//! a fresh instance, on the runtime as built and on the pre-initialised runtime, interleaved in
//! the same run, with a trivial Rust job (`fib(10)`) as the baseline; the component's sizes; its
//! compile-once, pre-initialise and load-from-cache times. Run: `cargo xtask bench js` (builds
//! the guests, then `cargo bench -p cue-host --bench js`). Results: docs/PERFORMANCE.md.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cue_host::local::js::{RUNTIME, preinitialized};
use cue_host::sandbox::{Call, Invocation, Limits, LoadedComponent, Sandbox, SandboxConfig};

/// Calls per series; the two runtimes and the baseline are measured in interleaved rounds.
const CALLS: usize = 400;
const ROUNDS: usize = 4;

fn fib() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guests/fib.wasm");
    std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing: run `cargo xtask guests`", path.display()))
}

fn p50_p99(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// A loaded component and the call to time on it.
struct Series {
    name: &'static str,
    loaded: LoadedComponent,
    call: Call,
    times: Vec<Duration>,
    fuel: u64,
}

impl Series {
    fn new(name: &'static str, loaded: LoadedComponent, call: Call) -> Series {
        Series { name, loaded, call, times: Vec::new(), fuel: 0 }
    }

    fn round(&mut self, calls: usize) {
        let limits = Limits::default();
        for _ in 0..calls {
            let outcome = self.loaded.invoke(&self.call, &limits, &Invocation::default());
            let output = outcome.result.expect("the call succeeds");
            black_box(output);
            self.times.push(outcome.wall);
            self.fuel = outcome.fuel_used;
        }
    }
}

fn js_call(loaded: &LoadedComponent) -> Call {
    loaded.json_call("run", &serde_json::json!(["(a, b) => a * b", "[5, 10]"])).expect("the call")
}

fn main() {
    println!("## JavaScript jobs: (a, b) => a * b on [5, 10], each call on a fresh instance");
    let no_cache = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let (raw, compile_raw) = timed(|| no_cache.load(RUNTIME).expect("the runtime loads"));
    let (snapshot, preinit) = timed(|| preinitialized(&no_cache).expect("pre-initialise"));
    let (pre, compile_pre) = timed(|| no_cache.load(&snapshot).expect("the pre-initialised runtime loads"));
    let dir = tempfile::tempdir().expect("temp dir");
    let cached =
        Sandbox::new(SandboxConfig { cache_dir: Some(dir.path().to_path_buf()), ..SandboxConfig::default() })
            .expect("sandbox");
    cached.load(&snapshot).expect("fill the cache");
    let from_cache =
        (0..5).map(|_| timed(|| black_box(cached.load(&snapshot).expect("load"))).1).min().unwrap();
    println!("size: as built {} bytes, pre-initialised {} bytes", RUNTIME.len(), snapshot.len());
    println!("compile once: as built {compile_raw:?}, pre-initialised {compile_pre:?}");
    println!("pre-initialise (instrument, compile, init, snapshot): {preinit:?}");
    println!("load the pre-initialised runtime from the code cache (best of 5): {from_cache:?}");

    let fib_loaded = no_cache.load(&fib()).expect("fib loads");
    let fib_call = fib_loaded.parse_call("fib(10)").expect("the call");
    let (raw_call, pre_call) = (js_call(&raw), js_call(&pre));
    let mut series = [
        Series::new("as built", raw, raw_call),
        Series::new("pre-initialised", pre, pre_call),
        Series::new("baseline fib(10)", fib_loaded, fib_call),
    ];
    for _ in 0..ROUNDS {
        for one in &mut series {
            one.round(CALLS / ROUNDS);
        }
    }
    let mut p50s = Vec::new();
    for one in series {
        let (p50, p99) = p50_p99(one.times);
        println!("{:<17} p50 {p50:>10.1?}  p99 {p99:>10.1?}  fuel {}", one.name, one.fuel);
        p50s.push(p50);
    }
    println!(
        "ratio as built / pre-initialised (p50): {:.2}; pre-initialised / baseline: {:.1}",
        p50s[0].as_secs_f64() / p50s[1].as_secs_f64(),
        p50s[1].as_secs_f64() / p50s[2].as_secs_f64()
    );
}
