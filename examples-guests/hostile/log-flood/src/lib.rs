//! Hostile guest `log-flood`: logs without end; ends when its log is too large.

wit_bindgen::generate!({ world: "cue:examples/attack", path: ["../../../wit", "../../wit"], generate_all });

struct Attack;

use cue::job::host::{Level, log};

impl Guest for Attack {
    fn run() {
        let line = "flood ".repeat(100);
        for i in 0u64.. {
            log(Level::Info, &format!("{i}: {line}"));
            if i % 7 == 0 {
                println!("{i}: {line}");
            }
        }
    }
}

export!(Attack);
