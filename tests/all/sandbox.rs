//! The sandbox library against real components: concurrency, isolation, determinism, the
//! cache, components from other toolchains, live events, virtual time.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cue_host::sandbox::{CodeSource, FailureKind, Invocation, JobEvent, Limits, Sandbox, SandboxConfig};

use crate::support::{guest_bytes, sandbox};

fn run_ok(sandbox: &Sandbox, bytes: &[u8], call: &str) -> (String, u64) {
    let loaded = sandbox.load(bytes).expect("load");
    let call = loaded.parse_call(call).expect("call");
    let outcome = loaded.invoke(&call, &Limits::default(), &Invocation::default());
    (outcome.result.expect("result").wave, outcome.fuel_used)
}

/// Hostile jobs running alongside good ones do not disturb them.
#[test]
fn good_jobs_keep_running_while_hostile_jobs_fail() {
    let sandbox = Arc::new(sandbox());
    let hostile = [
        ("hostile-infinite-loop", FailureKind::OutOfFuel),
        ("hostile-memory-bomb", FailureKind::MemoryLimit),
        ("hostile-recursion", FailureKind::StackOverflow),
        ("hostile-log-flood", FailureKind::TooLarge),
        ("hostile-panic", FailureKind::Trap),
        ("hostile-table-growth", FailureKind::TableLimit),
        ("hostile-sleep", FailureKind::Timeout),
        ("hostile-subscribe-forever", FailureKind::Timeout),
        ("hostile-poll-list", FailureKind::Timeout),
        ("hostile-busy-ready", FailureKind::Timeout),
    ];
    let attackers: Vec<_> = hostile
        .into_iter()
        .map(|(name, kind)| {
            let sandbox = sandbox.clone();
            thread::spawn(move || {
                let loaded = sandbox.load(&guest_bytes(name)).expect("load");
                let call = loaded.parse_call("run()").unwrap();
                let limits = Limits { fuel: 2_000_000_000, ..Limits::default() };
                for _ in 0..3 {
                    let outcome = loaded.invoke(&call, &limits, &Invocation::default());
                    assert_eq!(outcome.result.unwrap_err().kind, kind, "{name}");
                }
            })
        })
        .collect();
    let fib = sandbox.load(&guest_bytes("fib")).unwrap();
    let call = fib.parse_call("fib(50)").unwrap();
    let mut good = 0;
    while attackers.iter().any(|a| !a.is_finished()) || good < 100 {
        let outcome = fib.invoke(&call, &Limits::default(), &Invocation::default());
        assert_eq!(outcome.result.unwrap().wave, "12586269025");
        good += 1;
    }
    for attacker in attackers {
        attacker.join().expect("attacker thread");
    }
    assert!(good >= 100);
}

/// A job written by hand in WAT, assembled with the `wat` crate (no Rust guest toolchain,
/// no wit-bindgen, no SDK), runs.
#[test]
fn a_component_from_another_toolchain_runs() {
    let sandbox = sandbox();
    assert_eq!(run_ok(&sandbox, &guest_bytes("wat-triple"), "triple(14)").0, "42");
    let adder = wat::parse_str(
        r#"(component
            (core module $m (func (export "add") (param i32 i32) (result i32)
                (i32.add (local.get 0) (local.get 1))))
            (core instance $i (instantiate $m))
            (func (export "add") (param "a" s32) (param "b" s32) (result s32)
                (canon lift (core func $i "add"))))"#,
    )
    .unwrap();
    assert_eq!(run_ok(&sandbox, &adder, "add(-5, 47)").0, "42");
}

/// Every call gets a fresh instance: a global incremented by each call is 1 every time.
#[test]
fn no_state_leaks_between_calls() {
    let counter = wat::parse_str(
        r#"(component
            (core module $m
                (global $calls (mut i32) (i32.const 0))
                (func (export "bump") (result i32)
                    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
                    (global.get $calls)))
            (core instance $i (instantiate $m))
            (func (export "bump") (result u32) (canon lift (core func $i "bump"))))"#,
    )
    .unwrap();
    let sandbox = sandbox();
    let loaded = sandbox.load(&counter).unwrap();
    let call = loaded.parse_call("bump()").unwrap();
    for _ in 0..5 {
        let outcome = loaded.invoke(&call, &Limits::default(), &Invocation::default());
        assert_eq!(outcome.result.unwrap().wave, "1");
    }
}

/// Same job, same engine fingerprint: same result and same fuel, also across engines.
#[test]
fn execution_is_deterministic() {
    let (a, b) = (sandbox(), sandbox());
    assert_eq!(a.fingerprint(), b.fingerprint());
    let bytes = guest_bytes("nbody");
    let first = run_ok(&a, &bytes, "energy-after(20000)");
    assert_eq!(first, run_ok(&b, &bytes, "energy-after(20000)"));
    assert_eq!(first, run_ok(&a, &bytes, "energy-after(20000)"));
    let native = cue_kernels::nbody_energy_after(20000, 0, |_| ());
    assert_eq!(first.0, format!("{native:?}"), "wasm and native agree bit for bit");
}

/// `cue:job/host.random-u64` is seeded from the job: same job, same numbers; another seed,
/// other numbers.
#[test]
fn randomness_is_seeded_from_the_job() {
    let roll = wat::parse_str(
        r#"(component
            (import "cue:job/host@0.1.0" (instance $host
                (export "random-u64" (func (result u64)))))
            (core func $random (canon lower (func $host "random-u64")))
            (core module $m
                (import "host" "random" (func $random (result i64)))
                (func (export "roll") (result i64) (call $random)))
            (core instance $host_core (export "random" (func $random)))
            (core instance $i (instantiate $m (with "host" (instance $host_core))))
            (func (export "roll") (result u64) (canon lift (core func $i "roll"))))"#,
    )
    .unwrap();
    let sandbox = sandbox();
    let loaded = sandbox.load(&roll).unwrap();
    let call = loaded.parse_call("roll()").unwrap();
    let roll_with = |seed: Option<[u8; 32]>| {
        let options = Invocation { seed, ..Invocation::default() };
        loaded.invoke(&call, &Limits::default(), &options).result.unwrap().wave
    };
    assert_eq!(roll_with(None), roll_with(None));
    assert_eq!(roll_with(Some([7; 32])), roll_with(Some([7; 32])));
    assert_ne!(roll_with(Some([7; 32])), roll_with(Some([8; 32])));
}

/// Live progress events reach the listener while the job runs.
#[test]
fn progress_events_are_reported() {
    let sandbox = sandbox();
    let loaded = sandbox.load(&guest_bytes("nbody")).unwrap();
    let call = loaded.parse_call("energy-after(1000)").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options = Invocation {
        events: Some(Arc::new(move |event| sink.lock().unwrap().push(event))),
        ..Invocation::default()
    };
    let outcome = loaded.invoke(&call, &Limits::default(), &options);
    assert!(outcome.result.is_ok());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 100, "one event per 1% of the steps");
    assert_eq!(seen.last(), Some(&JobEvent::Progress { done: 1000, total: 1000 }));
}

/// Compiled code is cached on disk, and an entry this host did not write is never loaded.
#[test]
fn the_code_cache_is_used_and_tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig { cache_dir: Some(dir.path().to_path_buf()), ..SandboxConfig::default() };
    let bytes = guest_bytes("fib");
    let first = Sandbox::new(config.clone()).unwrap().load(&bytes).unwrap();
    assert_eq!(first.load_stats().0, CodeSource::Compiled);
    let second = Sandbox::new(config.clone()).unwrap();
    assert_eq!(second.load(&bytes).unwrap().load_stats().0, CodeSource::Cache);
    assert_eq!(run_ok(&second, &bytes, "fib(10)").0, "55");

    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut artifact = std::fs::read(&path).unwrap();
            let middle = artifact.len() / 2;
            artifact[middle] ^= 0xff;
            std::fs::write(&path, artifact).unwrap();
        }
    }
    let third = Sandbox::new(config).unwrap();
    let loaded = third.load(&bytes).unwrap();
    assert_eq!(loaded.load_stats().0, CodeSource::Compiled, "a tampered entry must be recompiled");
    assert_eq!(run_ok(&third, &bytes, "fib(10)").0, "55");
}

/// The cache stays within its bound, dropping the least recently used entries.
#[test]
fn the_code_cache_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        cache_max_bytes: 1,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config).unwrap();
    sandbox.load(&guest_bytes("fib")).unwrap();
    sandbox.load(&guest_bytes("nbody")).unwrap();
    let cached: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert!(cached.is_empty(), "a 1-byte cache keeps no artifact: {cached:?}");
    let small =
        Sandbox::new(SandboxConfig { max_component_bytes: 1024, ..SandboxConfig::default() }).unwrap();
    assert_eq!(small.load(&guest_bytes("fib")).err().unwrap().kind, FailureKind::TooLarge);
}

/// Limits apply per call: the same component succeeds or fails by its limits alone.
#[test]
fn fuel_is_a_budget_and_is_reported() {
    let sandbox = sandbox();
    let loaded = sandbox.load(&guest_bytes("hash")).unwrap();
    let call = loaded.parse_call("sha256-pattern(65536)").unwrap();
    let full = loaded.invoke(&call, &Limits::default(), &Invocation::default());
    assert!(full.result.is_ok());
    let tight = Limits { fuel: full.fuel_used / 2, ..Limits::default() };
    let starved = loaded.invoke(&call, &tight, &Invocation::default());
    assert_eq!(starved.result.unwrap_err().kind, FailureKind::OutOfFuel);
    assert_eq!(starved.fuel_used, tight.fuel, "a starved job used its whole budget, no more");
    let exact = Limits { fuel: full.fuel_used, ..Limits::default() };
    assert!(loaded.invoke(&call, &exact, &Invocation::default()).result.is_ok());
}

/// The hostile jobs that try to hold the host by waiting, and what their `timeout` says.
const WAITERS: [(&str, &str); 4] = [
    ("hostile-sleep", "waited until 30.000001s of its virtual time"),
    ("hostile-subscribe-forever", "waited forever"),
    ("hostile-poll-list", "waited until 3600.000101s"),
    ("hostile-busy-ready", "virtual clock reached its time limit"),
];

fn half_a_second() -> Limits {
    Limits { timeout: Duration::from_millis(500), ..Limits::default() }
}

/// No wait holds the host: a 30 s sleep, a wait on `u64::MAX`, a poll of a list (a far clock,
/// stdout, stdin, then clocks only) and a busy loop on `ready()` each end with `timeout` well
/// within the 500 ms limit + 1 s — decided in virtual time, not by the wall-clock deadline —
/// and the same job run twice ends the same way with the same fuel.
#[test]
fn jobs_that_wait_end_with_timeout_at_once_and_deterministically() {
    let sandbox = sandbox();
    for (name, words) in WAITERS {
        let loaded = sandbox.load(&guest_bytes(name)).unwrap();
        let call = loaded.parse_call("run()").unwrap();
        let started = Instant::now();
        let first = loaded.invoke(&call, &half_a_second(), &Invocation::default());
        let elapsed = started.elapsed();
        let error = first.result.as_ref().unwrap_err();
        assert_eq!(error.kind, FailureKind::Timeout, "{name}: {error}");
        assert!(error.message.contains(words), "{name}: `{}` should say `{words}`", error.message);
        assert!(elapsed < Duration::from_millis(1_500), "{name} held the host for {elapsed:?}");
        let second = loaded.invoke(&call, &half_a_second(), &Invocation::default());
        assert_eq!((&first.result, first.fuel_used), (&second.result, second.fuel_used), "{name}");
    }
}

/// A wait within the limit completes in virtual time: a 30 s sleep under a 60 s limit returns
/// at once, having seen 30 s pass; a busy loop on `ready()` takes `deadline / 100 µs` checks.
#[test]
fn waits_within_the_limit_complete_in_virtual_time() {
    let sandbox = sandbox();
    let sleeper = sandbox.load(&guest_bytes("hostile-sleep")).unwrap();
    let call = sleeper.parse_call("run()").unwrap();
    let minute = Limits { timeout: Duration::from_secs(60), ..Limits::default() };
    let started = Instant::now();
    let slept = sleeper.invoke(&call, &minute, &Invocation::default());
    let elapsed = started.elapsed();
    let nanos: u64 = slept.result.unwrap().wave.parse().unwrap();
    assert!((30_000_000_000..30_001_000_000).contains(&nanos), "the job saw {nanos} ns pass");
    assert!(elapsed < Duration::from_secs(1), "a 30 s sleep took {elapsed:?} of real time");

    let busy = sandbox.load(&guest_bytes("hostile-busy-ready")).unwrap();
    for (deadline, checks) in [("1000000", "10"), ("10000000", "100")] {
        let call = busy.parse_call(&format!("ready-after({deadline})")).unwrap();
        let first = busy.invoke(&call, &Limits::default(), &Invocation::default());
        let second = busy.invoke(&call, &Limits::default(), &Invocation::default());
        assert_eq!(first.result.unwrap().wave, checks, "ready-after({deadline})");
        assert_eq!(first.fuel_used, second.fuel_used);
    }
}

/// Waiting jobs give their thread, pool instance and slot back: on a sandbox sized for two
/// jobs, twelve waiting jobs in sequence and twenty-four on two threads all end `timeout`,
/// and a normal job then runs at once.
#[test]
fn waiting_jobs_free_their_slots_for_the_next_job() {
    let config = SandboxConfig { max_concurrent_jobs: 2, ..SandboxConfig::default() };
    let sandbox = Arc::new(Sandbox::new(config).unwrap());
    let waiters: Arc<Vec<_>> = Arc::new(
        WAITERS
            .iter()
            .map(|(name, _)| {
                let loaded = sandbox.load(&guest_bytes(name)).unwrap();
                let call = loaded.parse_call("run()").unwrap();
                (loaded, call)
            })
            .collect(),
    );
    let run_all = |waiters: &[(cue_host::sandbox::LoadedComponent, cue_host::sandbox::Call)]| {
        for _ in 0..3 {
            for (loaded, call) in waiters {
                let outcome = loaded.invoke(call, &half_a_second(), &Invocation::default());
                assert_eq!(outcome.result.unwrap_err().kind, FailureKind::Timeout);
            }
        }
    };
    let started = Instant::now();
    run_all(&waiters);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let waiters = waiters.clone();
            thread::spawn(move || run_all(&waiters))
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().expect("waiting jobs"));
    assert!(started.elapsed() < Duration::from_secs(5), "36 waiting jobs took {:?}", started.elapsed());
    let fib = sandbox.load(&guest_bytes("fib")).unwrap();
    let started = Instant::now();
    let outcome = fib.invoke(&fib.parse_call("fib(30)").unwrap(), &Limits::default(), &Invocation::default());
    assert_eq!(outcome.result.unwrap().wave, "832040");
    assert!(started.elapsed() < Duration::from_secs(1), "the next job waited {:?}", started.elapsed());
}

/// A huge result ends `too-large`, never a hang or a crash: one the job may pass the host is
/// lifted and refused by its WAVE size; one it may not (over `Limits::lift_bytes`) is refused
/// while it is lifted, before the host holds it.
#[test]
fn a_huge_result_ends_too_large_whether_or_not_it_may_be_lifted() {
    let sandbox = sandbox();
    let loaded = sandbox.load(&guest_bytes("hostile-huge-result")).unwrap();
    let call = loaded.parse_call("run()").unwrap();
    let lifted = loaded.invoke(&call, &Limits::default(), &Invocation::default());
    let error = lifted.result.unwrap_err();
    assert_eq!(error.kind, FailureKind::TooLarge, "{error}");
    assert!(error.message.contains("the result is larger than the limit"), "{error}");
    let small = Limits { result_bytes: 1 << 20, log_bytes: 1 << 20, ..Limits::default() };
    assert_eq!(small.lift_bytes(), 4 << 20);
    let refused = loaded.invoke(&call, &small, &Invocation::default());
    let error = refused.result.unwrap_err();
    assert_eq!(error.kind, FailureKind::TooLarge, "{error}");
    assert!(error.message.contains("more than 4194304 bytes at once"), "{error}");
}
