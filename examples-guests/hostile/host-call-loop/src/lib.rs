//! Hostile guest `host-call-loop`: calls the host in a tight loop; every call costs fuel, so it ends out of fuel.

wit_bindgen::generate!({ world: "cue:examples/attack", path: ["../../../wit", "../../wit"], generate_all });

struct Attack;

use cue::job::host::progress;

impl Guest for Attack {
    fn run() {
        loop {
            progress(0, 1);
        }
    }
}

export!(Attack);
