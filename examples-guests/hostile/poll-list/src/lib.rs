//! Hostile guest `poll-list`: polls a list of pollables — a far clock, stdout, stdin — which
//! returns at once with the streams ready, then polls only clocks (an hour, and never), a
//! wait past any sane time limit; ends with `timeout` at once.

wit_bindgen::generate!({ world: "cue:examples/attack-time", path: ["../../../wit", "../../wit"], generate_all });

use wasi::cli::{stdin::get_stdin, stdout::get_stdout};
use wasi::clocks::monotonic_clock::{now, subscribe_duration};
use wasi::io::poll::poll;

struct Attack;

const HOUR_NS: u64 = 3_600_000_000_000;

impl Guest for Attack {
    fn run() -> u64 {
        let started = now();
        let (stdout, stdin) = (get_stdout(), get_stdin());
        let never = subscribe_duration(u64::MAX);
        let (out, input) = (stdout.subscribe(), stdin.subscribe());
        let ready = poll(&[&never, &out, &input]);
        assert_eq!(ready, [1, 2], "stdout and stdin are always ready, the far clock is not");
        let hour = subscribe_duration(HOUR_NS);
        loop {
            if poll(&[&never, &hour]).contains(&0) {
                return now() - started;
            }
        }
    }
}

export!(Attack);
