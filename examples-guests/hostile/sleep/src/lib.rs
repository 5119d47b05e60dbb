//! Hostile guest `sleep`: `std::thread::sleep` for 30 s, then returns the nanoseconds that
//! passed. The host's clock is virtual, so the sleep takes no real time: it ends the job at
//! once with `timeout` when 30 s is past the job's time limit, and returns 30 s later in
//! virtual time otherwise.

wit_bindgen::generate!({ world: "cue:examples/attack-time", path: ["../../../wit", "../../wit"], generate_all });

use std::time::{Duration, Instant};

struct Attack;

impl Guest for Attack {
    fn run() -> u64 {
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs(30));
        started.elapsed().as_nanos() as u64
    }
}

export!(Attack);
