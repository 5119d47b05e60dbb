//! Hostile guest `huge-result`: returns a 48 MiB string; ends as too large.

wit_bindgen::generate!({ world: "cue:examples/huge-result", path: ["../../../wit", "../../wit"], generate_all });

struct Attack;

impl Guest for Attack {
    fn run() -> String {
        "x".repeat(48 << 20)
    }
}

export!(Attack);
