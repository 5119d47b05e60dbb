//! Hostile guest `forbidden-import`: imports a capability no host grants; refused before it runs.

wit_bindgen::generate!({ world: "cue:examples/forbidden", path: ["../../../wit", "../../wit"], generate_all });

struct Attack;

impl Guest for Attack {
    fn run() {
        cue::examples::exfiltrate::send("secrets");
    }
}

export!(Attack);
