//! Hostile guest `subscribe-forever`: blocks on a monotonic-clock pollable of `u64::MAX`
//! nanoseconds, a deadline that never comes; ends with `timeout` at once.

wit_bindgen::generate!({ world: "cue:examples/attack-time", path: ["../../../wit", "../../wit"], generate_all });

use wasi::clocks::monotonic_clock::{now, subscribe_duration};

struct Attack;

impl Guest for Attack {
    fn run() -> u64 {
        let started = now();
        subscribe_duration(u64::MAX).block();
        now() - started
    }
}

export!(Attack);
