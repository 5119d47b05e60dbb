//! Sandbox benchmarks, each against a baseline measured in the same run (ratios are stable
//! on a shared machine, absolute times are not). Run: `cargo xtask bench` (builds the
//! guests, then `cargo bench -p cue-host --bench sandbox`). Results: docs/PERFORMANCE.md.
//!
//! 1. A trivial call on a fresh instance through `LoadedComponent::invoke`, vs a bare
//!    wasmtime loop (pooling allocator + `InstancePre`, same engine settings, default WASI).
//! 2. CPU-bound guests (each float kernel built without and with WebAssembly SIMD): metered
//!    wasm with the float pass (loops unrolled, and as written) vs metered with the
//!    engine-wide NaN canonicalisation vs metered without NaN determinism vs unmetered wasm vs
//!    the same Rust compiled natively; then fuel and epochs alone and together.
//! 3. Loading a component: compiling (with and without loop unrolling) vs loading the cached
//!    compiled code.
//!
//! Arguments: the first picks the benchmarks whose name contains it (`trivial`, `cpu`,
//! `metering`, `load`); a second picks, in `cpu` and `metering`, the guests whose name contains
//! it (`-- cpu nbody`).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cue_host::sandbox::{Invocation, Limits, NanCanonicalization, Sandbox, SandboxConfig};
use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

fn guest(name: &str) -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guests").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing: run `cargo xtask guests`", path.display()))
}

/// Per-iteration times → (p50, p99).
fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn time_each(iterations: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..iterations / 10 {
        f();
    }
    let times = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    percentiles(times)
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .expect("at least one run")
}

struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A bare wasmtime config: pooling allocator, optionally with Cue's metering settings (fuel
/// and epochs; Cue's NaN determinism is a pass over the component, not an engine setting).
fn bare_config(metered: bool) -> Config {
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingAllocationConfig::new()));
    config.consume_fuel(metered).epoch_interruption(metered);
    config
}

/// Calls `call` repeatedly on fresh instances of a bare wasmtime setup.
struct Bare {
    engine: Engine,
    pre: wasmtime::component::InstancePre<BareState>,
    metered: bool,
}

impl Bare {
    fn new(bytes: &[u8], metered: bool) -> Self {
        let mut bare = Bare::with_config(bytes, bare_config(metered));
        bare.metered = metered;
        bare
    }

    fn with_config(bytes: &[u8], config: Config) -> Self {
        let engine = Engine::new(&config).expect("engine");
        let metered = true;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
        cue_host_link_stub(&mut linker);
        let component = Component::new(&engine, bytes).expect("compile");
        let pre = linker.instantiate_pre(&component).expect("link");
        Bare { engine, pre, metered }
    }

    fn call(&self, name: &str, args: &[Val]) -> Val {
        let state = BareState { wasi: WasiCtx::builder().build(), table: ResourceTable::new() };
        let mut store = Store::new(&self.engine, state);
        if self.metered {
            store.set_fuel(u64::MAX).ok();
            store.set_epoch_deadline(u64::MAX);
        }
        let instance = self.pre.instantiate(&mut store).expect("instantiate");
        let func = instance.get_func(&mut store, name).expect("export");
        let mut results = [Val::Bool(false)];
        func.call(&mut store, args, &mut results).expect("call");
        results[0].clone()
    }
}

/// The nbody guest imports `cue:job/host.progress`: give the bare setup a no-op one.
fn cue_host_link_stub(linker: &mut Linker<BareState>) {
    let mut host = linker.instance("cue:job/host@0.1.0").expect("instance");
    host.func_wrap("progress", |_, (_done, _total): (u64, u64)| Ok(())).expect("progress");
    host.func_wrap("log", |_, (_level, _message): (u8, String)| Ok(())).ok();
}

fn trivial_call() {
    trivial_call_of("fib", "fib(1)", "fib", Val::U32(1));
    trivial_call_of("wat-triple", "triple(1)", "triple", Val::U32(1));
}

fn trivial_call_of(guest_name: &str, wave: &str, export: &str, arg: Val) {
    let bytes = guest(guest_name);
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let loaded = sandbox.load(&bytes).expect("load");
    let call = loaded.parse_call(wave).expect("call");
    let limits = Limits::default();
    let options = Invocation::default();
    let bare = Bare::new(&bytes, true);
    let iterations = 20_000;
    // Interleave the two so that machine noise hits both alike.
    let mut cue_times = Vec::new();
    let mut bare_times = Vec::new();
    for _ in 0..5 {
        let (p50, _) = time_each(iterations / 5, || {
            black_box(loaded.invoke(&call, &limits, &options));
        });
        cue_times.push(p50);
        let (p50, _) = time_each(iterations / 5, || {
            black_box(bare.call(export, std::slice::from_ref(&arg)));
        });
        bare_times.push(p50);
    }
    let (cue_p50, cue_p99) = time_each(iterations, || {
        black_box(loaded.invoke(&call, &limits, &options));
    });
    let (bare_p50, bare_p99) = time_each(iterations, || {
        black_box(bare.call(export, std::slice::from_ref(&arg)));
    });
    println!("\n## trivial call on a fresh instance ({guest_name}: {wave}, {iterations} calls)");
    println!("cue invoke:          p50 {cue_p50:?}  p99 {cue_p99:?}");
    println!("bare wasmtime loop:  p50 {bare_p50:?}  p99 {bare_p99:?}");
    println!("ratio cue/bare (p50): {:.2}", cue_p50.as_secs_f64() / bare_p50.as_secs_f64());
    let medians: Vec<String> = cue_times
        .iter()
        .zip(&bare_times)
        .map(|(c, b)| format!("{:.2}", c.as_secs_f64() / b.as_secs_f64()))
        .collect();
    println!("ratio per interleaved round: {}", medians.join(", "));
}

/// A CPU-bound case: guest, call, export, its argument, and the native version.
type CpuCase = (&'static str, &'static str, &'static str, Val, fn());

/// The CPU-bound cases: each float kernel built without and with WebAssembly SIMD; only the
/// guests whose name contains `guests`, if given.
fn cpu_cases(guests: Option<&str>) -> Vec<CpuCase> {
    fn sha() {
        black_box(cue_kernels::sha256_pattern_hex(black_box(1 << 20)));
    }
    fn nbody() {
        black_box(cue_kernels::nbody_energy_after(black_box(200_000), 2_000, |_| ()));
    }
    fn matmul_f32() {
        black_box(cue_kernels::matmul_f32(black_box(256)));
    }
    fn matmul_f64() {
        black_box(cue_kernels::matmul_f64(black_box(256)));
    }
    fn mandelbrot() {
        black_box(cue_kernels::mandelbrot(black_box(400)));
    }
    let mut cases: Vec<CpuCase> =
        vec![("hash", "sha256-pattern(1048576)", "sha256-pattern", Val::U32(1 << 20), sha)];
    for suffix in ["", "-simd"] {
        let numeric: &'static str = if suffix.is_empty() { "numeric" } else { "numeric-simd" };
        let nbody_guest: &'static str = if suffix.is_empty() { "nbody" } else { "nbody-simd" };
        cases.extend([
            (nbody_guest, "energy-after(200000)", "energy-after", Val::U32(200_000), nbody as fn()),
            (numeric, "matmul-f32(256)", "matmul-f32", Val::U32(256), matmul_f32),
            (numeric, "matmul-f64(256)", "matmul-f64", Val::U32(256), matmul_f64),
            (numeric, "mandelbrot(400)", "mandelbrot", Val::U32(400), mandelbrot),
        ]);
    }
    cases.retain(|case| guests.is_none_or(|g| case.0.contains(g)));
    cases
}

fn cpu_bound(guests: Option<&str>) {
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let everywhere = SandboxConfig {
        nan_canonicalization: NanCanonicalization::EveryOperation,
        ..SandboxConfig::default()
    };
    let today = Sandbox::new(everywhere).expect("sandbox");
    let written =
        Sandbox::new(SandboxConfig { unroll_loops: false, ..SandboxConfig::default() }).expect("sandbox");
    let limits = Limits { fuel: u64::MAX / 2, timeout: Duration::from_secs(600), ..Limits::default() };
    let options = Invocation::default();
    println!("\n## CPU-bound guests (best of 7 runs each; ratios to native)");
    println!(
        "| guest | call | result | pass | pass, loops as written | engine-wide | metered, no NaN determinism | unmetered | native |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, call_text, export, arg, native) in cpu_cases(guests) {
        let bytes = guest(name);
        let run = |sandbox: &Sandbox| {
            let loaded = sandbox.load(&bytes).expect("load");
            let call = loaded.parse_call(call_text).expect("call");
            let outcome = loaded.invoke(&call, &limits, &options);
            let fuel = outcome.fuel_used;
            let wave = outcome.result.expect("ok").wave;
            let time = best_of(7, || {
                black_box(loaded.invoke(&call, &limits, &options).result.expect("ok"));
            });
            (time, wave, fuel)
        };
        let (pass, pass_result, pass_fuel) = run(&sandbox);
        let (metered, today_result, today_fuel) = run(&today);
        assert_eq!((&pass_result, pass_fuel), (&today_result, today_fuel), "the pass changed {call_text}");
        let (as_written, written_result, written_fuel) = run(&written);
        assert_eq!(
            (&pass_result, pass_fuel),
            (&written_result, written_fuel),
            "unrolling changed {call_text}"
        );
        let bare_time = |bare: &Bare| {
            best_of(7, || {
                black_box(bare.call(export, std::slice::from_ref(&arg)));
            })
        };
        let floor = bare_time(&Bare::new(&bytes, true));
        let unmetered = bare_time(&Bare::new(&bytes, false));
        let native = best_of(7, native);
        let ratio = |a: Duration| format!("{:.2}", a.as_secs_f64() / native.as_secs_f64());
        println!(
            "| {name} | `{call_text}` | {pass_result} ({pass_fuel} fuel every way) | {} | {} | {} | {} | {} | {native:.2?} |",
            ratio(pass),
            ratio(as_written),
            ratio(metered),
            ratio(floor),
            ratio(unmetered),
        );
    }
}

/// What fuel and epochs cost on their own and together, per kernel (bare engines without
/// NaN determinism, best of 5; ratios to the unmetered engine).
fn metering_breakdown(guests: Option<&str>) {
    println!("\n## metering alone (bare engine, no NaN determinism; ratios to unmetered)");
    println!("| guest | call | fuel | epochs | fuel + epochs |");
    println!("|---|---|---|---|---|");
    for (name, call_text, export, arg, _) in cpu_cases(guests) {
        let bytes = guest(name);
        let time = |fuel: bool, epochs: bool| {
            let mut config = bare_config(false);
            config.consume_fuel(fuel).epoch_interruption(epochs);
            let mut bare = Bare::with_config(&bytes, config);
            bare.metered = fuel || epochs;
            best_of(5, || {
                black_box(bare.call(export, std::slice::from_ref(&arg)));
            })
        };
        let none = time(false, false);
        let ratio = |a: Duration| format!("{:.2}", a.as_secs_f64() / none.as_secs_f64());
        println!(
            "| {name} | `{call_text}` | {} | {} | {} |",
            ratio(time(true, false)),
            ratio(time(false, true)),
            ratio(time(true, true))
        );
    }
}

fn compile_vs_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SandboxConfig { cache_dir: Some(dir.path().to_path_buf()), ..SandboxConfig::default() };
    println!(
        "\n## loading a component: compile (with and without loop unrolling) vs cached code (best of 5)"
    );
    for name in ["fib", "wordcount", "hash", "numeric-simd", "js"] {
        let bytes = guest(name);
        let compile_time = |config: SandboxConfig| {
            let sandbox = Sandbox::new(config).expect("sandbox");
            best_of(5, || {
                black_box(sandbox.load(&bytes).expect("load"));
            })
        };
        let compile = compile_time(SandboxConfig::default());
        let written = compile_time(SandboxConfig { unroll_loops: false, ..SandboxConfig::default() });
        let cached = Sandbox::new(config.clone()).expect("sandbox");
        cached.load(&bytes).expect("fill the cache");
        let load = best_of(5, || {
            black_box(cached.load(&bytes).expect("load"));
        });
        println!(
            "{name} ({} KiB): compile {compile:?} ({written:?} without unrolling), from cache {load:?} ({:.0}x faster)",
            bytes.len() / 1024,
            compile.as_secs_f64() / load.as_secs_f64()
        );
    }
}

fn main() {
    let mut words = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let only = words.next();
    let guests = words.next();
    let run = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    if run("trivial") {
        trivial_call();
    }
    if run("cpu") {
        cpu_bound(guests.as_deref());
    }
    if run("metering") {
        metering_breakdown(guests.as_deref());
    }
    if run("load") {
        compile_vs_cache();
    }
}
