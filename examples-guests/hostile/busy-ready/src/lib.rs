//! Hostile guest `busy-ready`: never blocks, but asks a pollable whether it is ready in a
//! tight loop. `run()` waits so for an hour and ends with `timeout`; `ready-after(n)` waits
//! so for `n` nanoseconds and returns how many checks it took — the same number on every
//! host, since each check takes a fixed step of the job's virtual time.

wit_bindgen::generate!({ world: "cue:examples/busy-ready", path: ["../../../wit", "../../wit"], generate_all });

use wasi::clocks::monotonic_clock::subscribe_duration;

struct Attack;

const HOUR_NS: u64 = 3_600_000_000_000;

fn checks_until_ready(nanoseconds: u64) -> u64 {
    let pollable = subscribe_duration(nanoseconds);
    let mut checks = 1;
    while !pollable.ready() {
        checks += 1;
    }
    checks
}

impl Guest for Attack {
    fn run() -> u64 {
        checks_until_ready(HOUR_NS)
    }

    fn ready_after(nanoseconds: u64) -> u64 {
        checks_until_ready(nanoseconds)
    }
}

export!(Attack);
